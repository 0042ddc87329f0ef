{#- Insert-only history of ended MQTT jobs: a row, once here, never changes (append strategy,
    and only jobs not yet present are selected). -#}
{{ config(
    post_hook="create unique index if not exists ux_bronze_printer_jobs on bronze_printer_jobs (printer_serial, job_key)"
) }}

with raw_jobs as (

    select * from {{ source('raw', 'raw_printer_jobs') }}

),

ended_jobs as (

    select *
    from raw_jobs
    where {{ raw_since_last_load('updated_at') }}
      and ended_at is not null
      and status in ('completed', 'failed', 'cancelled', 'aborted')

),

new_jobs as (

    select e.*
    from ended_jobs as e
    {% if is_incremental() %}
    where not exists (
        select 1 from {{ this }} as b
        where b.printer_serial = e.printer_serial and b.job_key = e.job_key
    )
    {% endif %}

),

typed as (

    select
        cast(printer_serial as text)                    as printer_serial,
        cast(printer_name as text)                      as printer_name,
        cast(job_key as text)                           as job_key,
        cast(nullif(task_id, '') as text)               as task_id,
        cast(nullif(subtask_id, '') as text)            as subtask_id,
        cast(nullif(project_id, '') as text)            as project_id,
        cast(nullif(subtask_name, '') as text)          as subtask_name,
        cast(nullif(gcode_file, '') as text)            as gcode_file,
        cast(nullif(print_type, '') as text)            as print_type,
        cast(status as text)                            as status,
        {{ utc('started_at') }}                         as started_at,
        {{ utc('ended_at') }}                           as ended_at,
        cast(round((julianday(ended_at) - julianday(started_at)) * 86400) as integer) as duration_s,
        cast(progress_pct as integer)                   as progress_pct,
        cast(layer_num as integer)                      as layer_num,
        cast(total_layers as integer)                   as total_layers,
        cast(print_error as integer)                    as print_error,
        cast(error_codes as text)                       as error_codes,
        cast(fail_reason as text)                       as fail_reason,
        cast(nullif(filament_type, '') as text)         as filament_type,
        cast(nullif(filament_color, '') as text)        as filament_color,
        {{ now_utc() }}                                  as loaded_at
    from new_jobs

)

select * from typed
