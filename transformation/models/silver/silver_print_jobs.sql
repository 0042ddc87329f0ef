{#- One clean row per ended print run: the table the InvenTree push reads.
    Source of truth (DESIGN.md): with Bambuddy enabled only Bambuddy runs are rows and MQTT jobs
    enrich them (same printer serial, end within match_window_minutes, same name); without it
    the MQTT jobs are the rows. Either way a print appears once. -#}
{{ config(
    materialized='incremental',
    unique_key='print_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook=[
        "create unique index if not exists ux_silver_print_jobs on silver_print_jobs (print_id)",
        "create index if not exists ix_silver_print_jobs_part on silver_print_jobs (part_key, is_success, finished_at, print_id)",
        "create index if not exists ix_silver_print_jobs_part_thumb on silver_print_jobs (part_key, has_thumbnail, finished_at, bambuddy_archive_id)",
        "create index if not exists ix_silver_print_jobs_part_loaded on silver_print_jobs (part_key, bronze_loaded_at)",
        "create index if not exists ix_silver_print_jobs_loaded on silver_print_jobs (bronze_loaded_at)",
        "create index if not exists ix_silver_print_jobs_built on silver_print_jobs (silver_built_at)",
    ]
) }}
{#- Incremental: only prints whose bronze rows arrived since the last build (and, with Bambuddy,
    runs that a newly arrived MQTT job may enrich) are recomputed; delete+insert by print_id. -#}
{% set window_days = var('match_window_minutes') | float / 1440.0 %}
{% set bambuddy = var('bambuddy_enabled') | string | lower in ('true', '1', 'yes') %}

with bronze_runs as not materialized (

    select * from {{ ref('bronze_archive_runs') }}

),

bronze_jobs as not materialized (

    select * from {{ ref('bronze_printer_jobs') }}

),

new_jobs as (

    select * from bronze_jobs
    {% if is_incremental() %}
    where loaded_at > (select coalesce(max(bronze_loaded_at), '') from {{ this }})
    {% endif %}

),

{% if bambuddy %}

changed_archives as (

    select distinct archive_id from bronze_runs
    {% if is_incremental() %}
    where loaded_at > (select coalesce(max(bronze_loaded_at), '') from {{ this }})
       or archive_id in (
            -- runs a newly arrived MQTT job may enrich: same printer, within the window
            select r.archive_id
            from bronze_runs as r
            inner join new_jobs as j
                on j.printer_serial = r.printer_serial
               and r.completed_at between strftime('%Y-%m-%dT%H:%M:%SZ', julianday(j.ended_at) - {{ window_days }})
                                      and strftime('%Y-%m-%dT%H:%M:%SZ', julianday(j.ended_at) + {{ window_days }})
       )
    {% endif %}

),

archive_runs as (

    -- an archive-only run and a logged run 1 of the same archive are the same print
    select *
    from (
        select r.*,
               row_number() over (partition by archive_id, run_no
                                  order by case when run_id like 'log:%' then 0 else 1 end, run_id) as dup_rank
        from bronze_runs as r
        where r.archive_id in (select archive_id from changed_archives)
    )
    where dup_rank = 1

),

first_success as (

    select archive_id, min(run_no) as run_no
    from archive_runs
    where status = 'completed'
    group by archive_id

),

{% endif %}

mqtt_jobs as (

    select
        j.*,
        -- X1 reports a generic /data/Metadata/plate_N.gcode: that names no part
        case when j.gcode_file like '/data/Metadata/plate_%' then null
             else replace(j.gcode_file, rtrim(j.gcode_file, replace(j.gcode_file, '/', '')), '')
        end as file_base
    from {{ 'bronze_jobs' if bambuddy else 'new_jobs' }} as j

),

{% if bambuddy %}

candidates as (

    select
        r.run_id,
        j.printer_serial,
        j.job_key,
        abs(julianday(j.ended_at) - julianday(r.completed_at)) as distance
    from archive_runs as r
    inner join mqtt_jobs as j
        on j.printer_serial = r.printer_serial
       and abs(julianday(j.ended_at) - julianday(r.completed_at)) <= {{ window_days }}
       and (
            {{ clean_key('j.subtask_name') }} = {{ clean_key('r.print_name') }}
         or {{ clean_key('j.subtask_name') }} = {{ clean_key('r.filename') }}
         or {{ clean_key('j.file_base') }} = {{ clean_key('r.filename') }}
       )

),

matches as (

    -- closest job per run, and each job to its closest run only
    select run_id, printer_serial, job_key
    from (
        select c.*,
               row_number() over (partition by run_id order by distance, job_key) as run_rank,
               row_number() over (partition by printer_serial, job_key order by distance, run_id) as job_rank
        from candidates as c
    )
    where run_rank = 1 and job_rank = 1

),

prints as (

    select
        'bambuddy:' || r.archive_id || ':' || r.run_no                  as print_id,
        case when m.job_key is not null then 'both' else 'bambuddy' end as source,
        r.printer_serial,
        r.printer_name,
        r.archive_id                                                    as bambuddy_archive_id,
        r.run_no,
        r.status,
        coalesce(r.print_name, r.filename)                              as name,
        r.filename,
        r.content_hash,
        r.print_name,
        r.weight_g,
        coalesce(r.estimated_time_s, r.duration_s, j.duration_s)        as print_time_s,
        r.quantity,
        coalesce(r.started_at, j.started_at)                            as started_at,
        coalesce(r.completed_at, j.ended_at)                            as finished_at,
        case when fs.run_no = r.run_no then 'bambuddy-' || r.archive_id
             else 'bambuddy-' || r.archive_id || '-r' || r.run_no end   as batch,
        coalesce(r.failure_reason, j.fail_reason)                       as fail_reason,
        m.job_key                                                       as mqtt_job_key,
        r.has_thumbnail,
        max(r.loaded_at, coalesce(j.loaded_at, ''))                     as bronze_loaded_at
    from archive_runs as r
    left join first_success as fs on fs.archive_id = r.archive_id
    left join matches as m on m.run_id = r.run_id
    left join mqtt_jobs as j on j.printer_serial = m.printer_serial and j.job_key = m.job_key

),

{% else %}

prints as (

    select
        'mqtt:' || j.printer_serial || ':' || j.job_key                 as print_id,
        'mqtt'                                                          as source,
        j.printer_serial,
        j.printer_name,
        null                                                            as bambuddy_archive_id,
        null                                                            as run_no,
        j.status,
        coalesce(j.subtask_name, j.file_base)                           as name,
        j.file_base                                                     as filename,
        null                                                            as content_hash,
        j.subtask_name                                                  as print_name,
        null                                                            as weight_g,
        case when j.status = 'completed' then j.duration_s end          as print_time_s,
        null                                                            as quantity,
        j.started_at,
        j.ended_at                                                      as finished_at,
        'mqtt-' || j.printer_serial || '-' || j.job_key                 as batch,
        j.fail_reason,
        j.job_key                                                       as mqtt_job_key,
        0                                                               as has_thumbnail,
        j.loaded_at                                                     as bronze_loaded_at
    from mqtt_jobs as j

),

{% endif %}

keyed as (

    select p.*, {{ part_key('p') }} as part_key
    from prints as p

)

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
    cast(quantity as integer)                               as quantity,
    cast(started_at as text)                                as started_at,
    cast(finished_at as text)                               as finished_at,
    cast(batch as text)                                     as batch,
    cast(fail_reason as text)                               as fail_reason,
    cast(mqtt_job_key as text)                              as mqtt_job_key,
    cast(has_thumbnail as integer)                          as has_thumbnail,
    cast(bronze_loaded_at as text)                          as bronze_loaded_at,
    -- rows (re)computed by this build carry its start: the push reads only what changed
    cast('{{ run_started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ") }}' as text) as silver_built_at
from keyed
