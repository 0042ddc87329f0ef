{#- Insert-only history of ended Bambuddy print runs. Each print-log entry is a run; reprints
    of one archive are separate runs numbered run_no 1, 2, ... in log order. An ended archive
    with no print-log entry at all counts as one run (run_id archive:<id>). -#}
{{ config(
    post_hook=[
        "create unique index if not exists ux_bronze_archive_runs on bronze_archive_runs (run_id)",
        "create index if not exists ix_bronze_archive_runs_archive on bronze_archive_runs (archive_id, run_no)",
    ]
) }}

{% set ended = "('completed', 'failed', 'aborted', 'cancelled', 'stopped')" %}

-- import CTEs are inlined (not materialized) so joins keep using the tables' indexes
with raw_archives as not materialized (

    select * from {{ source('raw', 'raw_bambuddy_archives') }}

),

raw_printers as not materialized (

    select * from {{ source('raw', 'raw_bambuddy_printers') }}

),

raw_runs as not materialized (

    select * from {{ source('raw', 'raw_bambuddy_print_runs') }}

),

archives as not materialized (

    select a.*, p.serial_number as printer_serial, p.name as bambuddy_printer_name
    from raw_archives as a
    left join raw_printers as p on p.id = a.printer_id

),

ended_logged as (

    select r.*
    from raw_runs as r
    where {{ raw_since_last_load('r.updated_at') }}
      and r.archive_id is not null
      and r.status in {{ ended }}
    {% if is_incremental() %}
      and not exists (select 1 from {{ this }} as b where b.run_id = 'log:' || r.id)
    {% endif %}

),

logged_runs as (

    -- numbered after the runs of the same archive already in bronze (reprints: 2, 3, ...)
    select
        'log:' || r.id                                   as run_id,
        r.archive_id,
        r.id                                             as print_log_id,
        {% if is_incremental() %}
        coalesce((select max(b.run_no) from {{ this }} as b
                  where b.archive_id = r.archive_id and b.run_id like 'log:%'), 0) +
        {% endif %}
        row_number() over (partition by r.archive_id order by coalesce(r.started_at, r.created_at), r.id) as run_no,
        r.status,
        r.started_at,
        r.completed_at,
        r.duration_seconds,
        r.filament_used_grams                            as run_filament_grams,
        r.failure_reason,
        r.printer_name
    from ended_logged as r

),

archive_only_runs as (

    select
        'archive:' || a.id                               as run_id,
        a.id                                             as archive_id,
        null                                             as print_log_id,
        1                                                as run_no,
        a.status,
        a.started_at,
        a.completed_at,
        a.actual_time_seconds                            as duration_seconds,
        null                                             as run_filament_grams,
        a.failure_reason,
        null                                             as printer_name
    from archives as a
    where {{ raw_since_last_load('a.updated_at') }}
      and a.status in {{ ended }}
      and not exists (
          select 1 from raw_runs as r where r.archive_id = a.id
      )

),

runs as (

    select * from logged_runs
    union all
    select * from archive_only_runs

),

new_runs as (

    select runs.*
    from runs
    {% if is_incremental() %}
    where not exists (select 1 from {{ this }} as b where b.run_id = runs.run_id)
      -- an archive-only run stands for run 1: never add it once a logged run 1 is in bronze
      and not exists (
          select 1 from {{ this }} as b
          where b.archive_id = runs.archive_id and b.run_no = runs.run_no and runs.run_id like 'archive:%'
      )
    {% endif %}

)

select
    cast(n.run_id as text)                                        as run_id,
    cast(n.archive_id as integer)                                 as archive_id,
    cast(n.print_log_id as integer)                               as print_log_id,
    cast(n.run_no as integer)                                     as run_no,
    cast(a.printer_id as integer)                                 as printer_id,
    cast(a.printer_serial as text)                                as printer_serial,
    cast(coalesce(n.printer_name, a.bambuddy_printer_name) as text) as printer_name,
    cast(a.print_name as text)                                    as print_name,
    cast(a.filename as text)                                      as filename,
    cast(nullif(lower(a.content_hash), '') as text)               as content_hash,
    cast(case lower(n.status) when 'stopped' then 'cancelled' else lower(n.status) end as text) as status,
    {{ utc('n.started_at') }}                                     as started_at,
    {{ utc('n.completed_at') }}                                   as completed_at,
    cast(n.duration_seconds as integer)                           as duration_s,
    cast(a.print_time_seconds as integer)                         as estimated_time_s,
    cast(coalesce(n.run_filament_grams, a.filament_used_grams) as real) as weight_g,
    cast(a.quantity as integer)                                   as quantity,
    cast(case when a.thumbnail_path is not null and a.thumbnail_path != '' then 1 else 0 end as integer) as has_thumbnail,
    cast(n.failure_reason as text)                                as failure_reason,
    {{ now_utc() }}                                                as loaded_at
from new_runs as n
inner join archives as a on a.id = n.archive_id
