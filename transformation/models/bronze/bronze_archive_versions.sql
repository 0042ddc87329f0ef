{#- Insert-only history of every version of every Bambuddy archive the collector wrote: a rename,
    a status change (printing -> aborted "Stale"), a thumbnail arriving or a PATCH adds a row;
    nothing is ever rewritten. Silver reads the latest version of each archive. -#}
{{ config(
    post_hook=[
        "create unique index if not exists ux_bronze_archive_versions on bronze_archive_versions (archive_id, version_at)",
    ]
) }}

with raw_archives as not materialized (

    select * from {{ source('raw', 'raw_bambuddy_archives') }}

),

raw_printers as not materialized (

    select * from {{ source('raw', 'raw_bambuddy_printers') }}

),

versions as (

    select a.*
    from raw_archives as a
    where {{ raw_since_last_load('a.updated_at') }}
    {% if is_incremental() %}
      and not exists (select 1 from {{ this }} as b
                      where b.archive_id = a.id and b.version_at = {{ utc_ms('a.updated_at') }})
    {% endif %}

)

select
    cast(a.id as integer)                                         as archive_id,
    {{ utc_ms('a.updated_at') }}                                  as version_at,
    cast(a.printer_id as integer)                                 as printer_id,
    cast(p.serial_number as text)                                 as printer_serial,
    cast(p.name as text)                                          as printer_name,
    cast(nullif(a.print_name, '') as text)                        as print_name,
    cast(nullif(a.filename, '') as text)                          as filename,
    cast(nullif(lower(a.content_hash), '') as text)               as content_hash,
    cast(case lower(a.status) when 'stopped' then 'cancelled' else lower(a.status) end as text) as status,
    {{ utc('a.started_at') }}                                     as started_at,
    {{ utc('a.completed_at') }}                                   as completed_at,
    {{ utc('a.created_at') }}                                     as created_at,
    cast(a.print_time_seconds as integer)                         as estimated_time_s,
    cast(a.actual_time_seconds as integer)                        as actual_time_s,
    cast(a.filament_used_grams as real)                           as weight_g,
    cast(a.quantity as integer)                                   as quantity,
    cast(case when a.thumbnail_path is not null and a.thumbnail_path != '' then 1 else 0 end as integer) as has_thumbnail,
    cast(a.failure_reason as text)                                as failure_reason,
    -- Bambuddy's fallback archive (FTP failed, no 3MF): its filename is the printer's gcode path
    cast(case when json_valid(a.raw_json)
              and json_extract(a.raw_json, '$.extra_data.no_3mf_available') in (1, 'true') then 1 else 0 end
         as integer)                                              as no_3mf,
    -- exact evidence of the printer job, when a Bambuddy version records it (1.2.5.2's API does not)
    cast(case when json_valid(a.raw_json) then nullif(nullif(coalesce(
            json_extract(a.raw_json, '$.extra_data.subtask_id'), json_extract(a.raw_json, '$.subtask_id')), ''), '0')
         end as text)                                             as evidence_subtask_id,
    cast(case when json_valid(a.raw_json) then nullif(nullif(coalesce(
            json_extract(a.raw_json, '$.extra_data.task_id'), json_extract(a.raw_json, '$.task_id')), ''), '0')
         end as text)                                             as evidence_task_id,
    cast(coalesce(a.deleted, 0) as integer)                       as deleted,
    {{ utc_ms('a.first_seen_at') }}                               as first_seen_at,
    {{ now_utc() }}                                                as loaded_at
from versions as a
left join raw_printers as p on p.id = a.printer_id
