{#- One clean row per ended print run: the table the InvenTree push reads. Rebuilt in full every
    build (a few thousand rows a second in SQLite), so nothing depends on build order; the
    pairing itself is persisted in silver_job_matches.
    With Bambuddy enabled (DESIGN.md source of truth) the rows are Bambuddy runs; their MQTT job
    (silver_job_matches) is the better witness of the outcome and the times, Bambuddy enriches
    (weight, thumbnail, quantity, archive id). A completed job Bambuddy did not archive within
    archive_grace_minutes of its end is a row of its own (an MQTT print); if its run appears
    later, that run keeps the MQTT print_id and batch (see the yml: "print_id stability").
    Without Bambuddy the MQTT jobs are the rows. Either way a print appears once. -#}
{{ config(
    materialized='table',
    post_hook=[
        "create unique index if not exists ux_silver_print_jobs on silver_print_jobs (print_id)",
        "create index if not exists ix_silver_print_jobs_part on silver_print_jobs (part_key, is_success, finished_at, print_id)",
        "create index if not exists ix_silver_print_jobs_loaded on silver_print_jobs (bronze_loaded_at)",
        "create index if not exists ix_silver_print_jobs_built on silver_print_jobs (silver_built_at)",
    ]
) }}
-- depends_on: {{ ref('bronze_archive_runs') }}, {{ ref('bronze_archive_versions') }}, {{ ref('silver_job_matches') }}, {{ ref('silver_mqtt_emissions') }}
{% set bambuddy = var('bambuddy_enabled') | string | lower in ('true', '1', 'yes') %}
{% set definite = "('completed', 'failed', 'cancelled')" %}

with bronze_versions as not materialized (

    select * from {{ ref('bronze_archive_versions') }}

),

bronze_runs as not materialized (

    select * from {{ ref('bronze_archive_runs') }}

),

job_matches as not materialized (

    select * from {{ ref('silver_job_matches') }}

),

emissions as not materialized (

    select * from {{ ref('silver_mqtt_emissions') }}

),

bronze_jobs as not materialized (

    select * from {{ ref('bronze_printer_jobs') }}

),

jobs as (

    select j.*, {{ model_file('j.gcode_file') }} as file_base
    from bronze_jobs as j

),

{% if bambuddy %}

archives as (

    -- the latest version of each archive: a rename or status change in Bambuddy shows here
    {{ latest_archive_versions('bronze_versions') }}

),

runs as (

    -- an archive-only run and a logged run 1 of the same archive are the same print
    select r.*,
           max(r.run_no) over (partition by r.archive_id) as last_run_no
    from (
        select b.*, row_number() over (partition by archive_id, run_no
                                       order by case when run_id like 'log:%' then 0 else 1 end, run_id) as dup_rank
        from bronze_runs as b
    ) as r
    where r.dup_rank = 1

),

enriched as (

    select
        r.archive_id,
        r.run_no,
        r.printer_serial,
        coalesce(a.printer_name, r.printer_name)                      as printer_name,
        coalesce(a.print_name, r.print_name)                          as print_name,
        -- a fallback archive's filename is the printer's gcode path: no model name
        case when coalesce(a.no_3mf, 0) = 1 then null
             else {{ model_file('coalesce(a.filename, r.filename)') }} end as filename,
        coalesce(a.content_hash, r.content_hash)                      as content_hash,
        -- the run's own status; a status changed on the archive later (Bambuddy's PATCH,
        -- a reconcile) applies to the archive's latest run
        case when r.run_no = r.last_run_no and a.status in ('completed', 'failed', 'cancelled', 'aborted')
                  and a.version_at > r.loaded_at then a.status
             else r.status end                                        as bambuddy_status,
        coalesce(case when r.run_no = r.last_run_no and a.version_at > r.loaded_at then a.failure_reason end,
                 r.failure_reason)                                    as bambuddy_reason,
        r.started_at,
        r.completed_at,
        r.duration_s,
        coalesce(a.estimated_time_s, r.estimated_time_s)              as estimated_time_s,
        coalesce(r.weight_g, a.weight_g)                              as weight_g,
        coalesce(a.quantity, r.quantity)                              as quantity,
        coalesce(a.has_thumbnail, r.has_thumbnail)                    as has_thumbnail,
        r.loaded_at                                                   as run_loaded_at,
        max(r.loaded_at, coalesce(a.loaded_at, ''))                   as loaded_at
    from runs as r
    left join archives as a on a.archive_id = r.archive_id
    where coalesce(a.deleted, 0) = 0

),

first_success as (

    -- Bambuddy's own (immutable) run status decides the batch, as the original sidecar did: a
    -- better witness arriving later must not move a batch that a stock item already carries
    select archive_id as fs_archive_id, min(run_no) as first_run_no
    from runs
    where status = 'completed'
    group by archive_id

),

run_prints as (

    select
        e.*,
        m.job_key                                                     as mqtt_job_key,
        j.status                                                      as logger_status,
        j.fail_reason                                                 as logger_reason,
        j.started_at                                                  as job_started_at,
        j.ended_at                                                    as job_ended_at,
        j.duration_s                                                  as job_duration_s,
        j.subtask_name,
        j.file_base                                                   as job_file_base,
        -- print_id stability: a job emitted as an MQTT print (grace period over, no run yet)
        -- keeps that identity when its run is paired later
        (em.job_ref is not null)                                      as keeps_mqtt_id,
        max(e.loaded_at, coalesce(m.matched_at, ''), coalesce(j.loaded_at, '')) as bronze_loaded_at
    from enriched as e
    left join job_matches as m on m.run_ref = e.archive_id || ':' || e.run_no
    left join jobs as j on j.printer_serial = m.printer_serial and j.job_key = m.job_key
    left join emissions as em on em.printer_serial = m.printer_serial and em.job_key = m.job_key

),

bambuddy_prints as (

    select
        case when keeps_mqtt_id then 'mqtt:' || printer_serial || ':' || mqtt_job_key
             else 'bambuddy:' || archive_id || ':' || run_no end      as print_id,
        case when mqtt_job_key is not null then 'both' else 'bambuddy' end as source,
        printer_serial,
        printer_name,
        archive_id                                                    as bambuddy_archive_id,
        run_no,
        -- the printer's own FINISH/FAILED/cancel decides; Bambuddy's word only without it
        case when logger_status in {{ definite }} then logger_status else bambuddy_status end as status,
        case when logger_status in {{ definite }} then 'logger' else 'bambuddy' end as status_source,
        case when mqtt_job_key is not null and logger_status != bambuddy_status
             then 'printer reported ' || logger_status || coalesce(' (' || logger_reason || ')', '')
                  || '; Bambuddy says ' || bambuddy_status || coalesce(' (' || bambuddy_reason || ')', '')
        end                                                           as witness_note,
        coalesce(print_name, subtask_name, filename)                  as name,
        coalesce(filename, job_file_base)                             as filename,
        content_hash,
        coalesce(print_name, subtask_name)                            as print_name,
        weight_g,
        coalesce(job_duration_s, duration_s, estimated_time_s)        as print_time_s,
        estimated_time_s,
        quantity,
        coalesce(job_started_at, started_at)                          as started_at,
        coalesce(job_ended_at, completed_at)                          as finished_at,
        case when keeps_mqtt_id then 'mqtt-' || printer_serial || '-' || mqtt_job_key
             when fs.first_run_no = run_no then 'bambuddy-' || archive_id
             else 'bambuddy-' || archive_id || '-r' || run_no end     as batch,
        case when logger_status in {{ definite }} then logger_reason
             else coalesce(bambuddy_reason, logger_reason) end       as fail_reason,
        mqtt_job_key,
        has_thumbnail,
        bronze_loaded_at
    from run_prints
    left join first_success as fs on fs.fs_archive_id = run_prints.archive_id

),

mqtt_prints as (

    -- completed prints the logger saw and Bambuddy did not archive within the grace period
    select j.*, 'no Bambuddy run ' || {{ var('archive_grace_minutes') }} || ' min after the printer''s FINISH' as witness_note
    from jobs as j
    inner join emissions as em on em.printer_serial = j.printer_serial and em.job_key = j.job_key
    where not exists (select 1 from job_matches as m
                      where m.printer_serial = j.printer_serial and m.job_key = j.job_key)

),

{% else %}

mqtt_prints as (

    select j.*, null as witness_note
    from jobs as j

),

{% endif %}

job_prints as (

    select
        'mqtt:' || j.printer_serial || ':' || j.job_key                 as print_id,
        'mqtt'                                                          as source,
        j.printer_serial,
        j.printer_name,
        null                                                            as bambuddy_archive_id,
        null                                                            as run_no,
        j.status,
        'logger'                                                        as status_source,
        j.witness_note,
        coalesce(j.subtask_name, j.file_base)                           as name,
        j.file_base                                                     as filename,
        null                                                            as content_hash,
        j.subtask_name                                                  as print_name,
        null                                                            as weight_g,
        j.duration_s                                                    as print_time_s,
        null                                                            as estimated_time_s,
        null                                                            as quantity,
        j.started_at,
        j.ended_at                                                      as finished_at,
        'mqtt-' || j.printer_serial || '-' || j.job_key                 as batch,
        j.fail_reason,
        j.job_key                                                       as mqtt_job_key,
        0                                                               as has_thumbnail,
        j.loaded_at                                                     as bronze_loaded_at
    from mqtt_prints as j

),

prints as (

    {% if bambuddy %}
    select * from bambuddy_prints
    union all
    {% endif %}
    select * from job_prints

),

keyed as (

    select p.*, {{ part_key('p') }} as part_key
    from prints as p

),

built as (

select
    cast(print_id as text)                                  as print_id,
    cast(source as text)                                    as source,
    cast(printer_serial as text)                            as printer_serial,
    cast(printer_name as text)                              as printer_name,
    cast(bambuddy_archive_id as integer)                    as bambuddy_archive_id,
    cast(run_no as integer)                                 as run_no,
    cast(status as text)                                    as status,
    cast(status = 'completed' as integer)                   as is_success,
    cast(name as text)                                      as name,
    cast(filename as text)                                  as filename,
    cast(content_hash as text)                              as content_hash,
    cast(part_key as text)                                  as part_key,
    cast({{ ipn('part_key') }} as text)                     as ipn,
    cast(substr('3D printed ' || coalesce(name, filename, part_key)
                || coalesce(' (file ' || filename || ')', ''), 1, 250) as text) as description,
    cast(weight_g as real)                                  as weight_g,
    cast(print_time_s as integer)                           as print_time_s,
    cast(estimated_time_s as integer)                       as estimated_time_s,
    cast(quantity as integer)                               as quantity,
    cast(started_at as text)                                as started_at,
    cast(finished_at as text)                               as finished_at,
    cast(batch as text)                                     as batch,
    cast(fail_reason as text)                               as fail_reason,
    cast(mqtt_job_key as text)                              as mqtt_job_key,
    cast(status_source as text)                             as status_source,
    cast(witness_note as text)                              as witness_note,
    cast(has_thumbnail as integer)                          as has_thumbnail,
    cast(bronze_loaded_at as text)                          as bronze_loaded_at
from keyed

)

{#- silver_built_at: this build's start for a row that is new or changed, else the stamp it had.
    The table is rebuilt in full, yet the push (orchestration/silver.py) reads only the rows built
    after its watermark, so its work follows what changed, not the history. -#}
{%- set now = run_started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ") %}
{#- (a unit test has no `this`: every row is new there) #}
{%- set previous = adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier)
                   if this is not none else none %}
{%- set old_columns = adapter.get_columns_in_relation(previous) | map(attribute='name') | list if previous else [] %}
{#- every column the yml declares but the stamps themselves; when the previous table lacks one (a
    release added it) every row counts as changed once -#}
{%- set compared = model.columns.keys() | list | reject('in', ['silver_built_at', 'bronze_loaded_at']) | list %}
select
    b.*,
    {%- if 'silver_built_at' in old_columns and compared and compared | reject('in', old_columns) | list | length == 0 %}
    cast(case when o.print_id is not null
              {%- for c in compared %} and b.{{ c }} is o.{{ c }}{% endfor %}
              then o.silver_built_at else '{{ now }}' end as text)   as silver_built_at
from built as b
left join {{ this }} as o on o.print_id = b.print_id
    {%- else %}
    cast('{{ now }}' as text)                                          as silver_built_at
from built as b
    {%- endif %}
