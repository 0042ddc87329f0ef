{#- One row per part key: what InvenTree's Part should say, from the prints of that part.
    Incremental: only part keys with prints that arrived since the last build are recomputed. -#}
{{ config(
    materialized='incremental',
    unique_key='part_key',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook="create unique index if not exists ux_silver_parts on silver_parts (part_key)"
) }}

with all_prints as (

    select * from {{ ref('silver_print_jobs') }}

),

changed_keys as (

    select distinct part_key from all_prints
    {% if is_incremental() %}
    where bronze_loaded_at > (select coalesce(max(bronze_loaded_at), '') from {{ this }})
    {% endif %}

),

prints as (

    select * from all_prints where part_key in (select part_key from changed_keys)

),

latest as (

    -- the latest successful print describes the part (else the latest print at all)
    select *
    from (
        select p.*,
               row_number() over (partition by part_key order by is_success desc, finished_at desc, print_id desc) as rn
        from prints as p
    )
    where rn = 1

),

thumbnails as (

    select part_key, bambuddy_archive_id as thumbnail_archive_id
    from (
        select part_key, bambuddy_archive_id,
               row_number() over (partition by part_key order by finished_at desc, print_id desc) as rn
        from prints
        where has_thumbnail = 1 and bambuddy_archive_id is not null
    )
    where rn = 1

),

stats as (

    select
        part_key,
        min(finished_at)                    as first_printed_at,
        max(finished_at)                    as last_printed_at,
        count(*)                            as prints_count,
        sum(is_success)                     as successful_prints,
        max(bronze_loaded_at)               as bronze_loaded_at
    from prints
    group by part_key

)

select
    cast(l.part_key as text)                as part_key,
    cast(l.ipn as text)                     as ipn,
    cast(substr(coalesce(l.name, l.filename, l.part_key), 1, 100) as text) as name,
    cast(l.description as text)             as description,
    cast(l.weight_g as real)                as weight_g,
    cast(l.print_time_s as integer)         as print_time_s,
    cast(t.thumbnail_archive_id as integer) as thumbnail_archive_id,
    cast(s.first_printed_at as text)        as first_printed_at,
    cast(s.last_printed_at as text)         as last_printed_at,
    cast(s.prints_count as integer)         as prints_count,
    cast(s.successful_prints as integer)    as successful_prints,
    cast(s.bronze_loaded_at as text)        as bronze_loaded_at
from latest as l
inner join stats as s on s.part_key = l.part_key
left join thumbnails as t on t.part_key = l.part_key
