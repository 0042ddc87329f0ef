{#- The persisted MQTT job <-> Bambuddy run pairing. Insert-only: a pair, once made, is never
    changed or taken away, so the join does not depend on build order and a later print never
    steals an earlier match. Each build pairs only runs and jobs not yet paired:
    - exact evidence first (the archive records the job's subtask/task id: evidence = 'id');
    - else same printer, same name, and time: Bambuddy's start is its archive creation (1-3 min
      after the printer's start) or, for a reprint, the first run's start; its end may be a
      reconcile time. So a run near the job's start scores by start, else by end.
    - mutual best among the free ones, in rounds, so a run whose closest job is taken still gets
      the next free candidate.
    A run waits while its printer has a job still open that may be its witness. -#}
{#- full_refresh=false: this is recorded history; a --full-refresh would forget it (and move print_ids). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    full_refresh=false,
    post_hook=[
        "create unique index if not exists ux_silver_job_matches_run on silver_job_matches (run_ref)",
        "create unique index if not exists ux_silver_job_matches_job on silver_job_matches (job_ref)",
    ]
) }}
{% set window_s = var('match_window_minutes') | float * 60 %}
{% set rounds = 3 %}
{#- Bambuddy's start fits the job: up to 2 min before the printer's start to the window after it,
    at most 5 min after the job's end, and Bambuddy's end neither well before the job's end nor
    more than a day after it (a reconcile comes late, not days late). -#}
{% set start_fits = "start_gap_s between -120 and " ~ window_s ~ " and start_after_end_s <= 300 and end_lag_s between -"
                    ~ window_s ~ " and 86400" %}

with bronze_versions as not materialized (

    select * from {{ ref('bronze_archive_versions') }}

),

bronze_runs as not materialized (

    select * from {{ ref('bronze_archive_runs') }}

),

raw_jobs as not materialized (

    select * from {{ source('raw', 'raw_printer_jobs') }}

),

bronze_jobs as not materialized (

    select * from {{ ref('bronze_printer_jobs') }}

),

archives as (

    -- the latest version of each archive (names and evidence may arrive late)
    {{ latest_archive_versions('bronze_versions') }}

),

runs as (

    select
        r.archive_id || ':' || r.run_no                               as run_ref,
        r.archive_id,
        r.run_no,
        r.printer_serial,
        coalesce(a.print_name, r.print_name)                          as print_name,
        {{ model_file('coalesce(a.filename, r.filename)') }}          as file_base,
        a.evidence_subtask_id,
        a.evidence_task_id,
        r.started_at,
        r.completed_at
    from (
        select b.*, row_number() over (partition by archive_id, run_no
                                       order by case when run_id like 'log:%' then 0 else 1 end, run_id) as dup_rank
        from bronze_runs as b
    ) as r
    left join archives as a on a.archive_id = r.archive_id
    where r.dup_rank = 1
    {% if is_incremental() %}
      and not exists (select 1 from {{ this }} as m where m.run_ref = r.archive_id || ':' || r.run_no)
    {% endif %}
      -- the printer's open job may be this run's witness: wait until it has ended
      and not exists (
          select 1 from raw_jobs as live
          where live.printer_serial = r.printer_serial and live.ended_at is null
            and julianday(live.started_at) <= julianday(r.completed_at)
            and julianday(live.started_at) >= julianday(r.started_at) - {{ window_s }} / 86400.0
      )

),

jobs as (

    select
        j.printer_serial || ':' || j.job_key                          as job_ref,
        j.printer_serial,
        j.job_key,
        j.task_id,
        j.subtask_id,
        j.subtask_name,
        {{ model_file('j.gcode_file') }}                              as file_base,
        j.started_at,
        j.ended_at
    from bronze_jobs as j
    {% if is_incremental() %}
    where not exists (select 1 from {{ this }} as m where m.job_ref = j.printer_serial || ':' || j.job_key)
    {% endif %}

),

pairs as (

    select
        r.run_ref,
        r.archive_id,
        r.run_no,
        j.job_ref,
        j.printer_serial,
        j.job_key,
        case when (r.evidence_subtask_id is not null and r.evidence_subtask_id = j.subtask_id)
               or (r.evidence_subtask_id is null and r.evidence_task_id is not null and r.evidence_task_id = j.task_id)
             then 1 else 0 end                                        as exact,
        (julianday(r.started_at) - julianday(j.started_at)) * 86400   as start_gap_s,
        (julianday(r.started_at) - julianday(j.ended_at)) * 86400     as start_after_end_s,
        abs(julianday(r.completed_at) - julianday(j.ended_at)) * 86400 as end_gap_s,
        coalesce((julianday(r.completed_at) - julianday(j.ended_at)) * 86400, 0) as end_lag_s,
        (   {{ clean_key('j.subtask_name') }} = {{ clean_key('r.print_name') }}
         or {{ clean_key('j.subtask_name') }} = {{ clean_key('r.file_base') }}
         or {{ clean_key('j.file_base') }} = {{ clean_key('r.file_base') }}
         or {{ clean_key('j.file_base') }} = {{ clean_key('r.print_name') }})  as same_name
    from runs as r
    inner join jobs as j on j.printer_serial = r.printer_serial

),

candidates as (

    select
        run_ref, archive_id, run_no, job_ref, printer_serial, job_key,
        case when exact = 1 then 'id' else 'time_name' end            as evidence,
        -- smaller is better: exact evidence, then Bambuddy's start just after the printer's,
        -- then the ends' distance
        case when exact = 1 then 0
             when {{ start_fits }} then 1 + abs(start_gap_s)
             else 1 + {{ window_s }} + end_gap_s end                  as score
    from pairs
    where exact = 1
       or (same_name and (({{ start_fits }}) or end_gap_s <= {{ window_s }}))

),

{% for i in range(rounds) %}
round_{{ i }} as (

    select *
    from (
        select c.*,
               row_number() over (partition by run_ref order by score, job_ref) as run_rank,
               row_number() over (partition by job_ref order by score, run_ref) as job_rank
        from candidates as c
        {% if i > 0 %}
        where c.run_ref not in (
            {% for k in range(i) %}select run_ref from round_{{ k }}{% if not loop.last %} union all {% endif %}{% endfor %})
          and c.job_ref not in (
            {% for k in range(i) %}select job_ref from round_{{ k }}{% if not loop.last %} union all {% endif %}{% endfor %})
        {% endif %}
    )
    where run_rank = 1 and job_rank = 1

),
{% endfor %}

matched as (

    {% for i in range(rounds) %}
    select * from round_{{ i }}{% if not loop.last %} union all{% endif %}
    {% endfor %}

)

select
    cast(run_ref as text)                     as run_ref,
    cast(archive_id as integer)               as archive_id,
    cast(run_no as integer)                   as run_no,
    cast(job_ref as text)                     as job_ref,
    cast(printer_serial as text)              as printer_serial,
    cast(job_key as text)                     as job_key,
    cast(evidence as text)                    as evidence,
    cast(round(score) as integer)             as score,
    {{ now_utc() }}                            as matched_at
from matched
