{#- One row per part key: what InvenTree's Part should say, from the prints of that part.
    Incremental: only part keys with prints that arrived since the last build are recomputed,
    each from index lookups on silver_print_jobs (see its post-hooks), not a scan of all prints. -#}
{{ config(
    materialized='incremental',
    unique_key='part_key',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook="create unique index if not exists ux_silver_parts on silver_parts (part_key)"
) }}

-- NOT MATERIALIZED: the CTE is inlined, so the lookups below use silver_print_jobs' indexes
with prints as not materialized (

    select * from {{ ref('silver_print_jobs') }}

),

changed_keys as (

    select distinct part_key
    from prints
    {% if is_incremental() %}
    where bronze_loaded_at > (select coalesce(max(bronze_loaded_at), '') from {{ this }})
    {% endif %}

),

per_key as (

    select
        k.part_key,
        -- the latest successful print describes the part (else the latest print at all)
        (select p.print_id from prints as p where p.part_key = k.part_key
         order by p.is_success desc, p.finished_at desc, p.print_id desc limit 1)       as latest_print_id,
        (select p.bambuddy_archive_id from prints as p
         where p.part_key = k.part_key and p.has_thumbnail = 1 and p.bambuddy_archive_id is not null
         order by p.finished_at desc limit 1)                                             as thumbnail_archive_id,
        (select min(p.finished_at) from prints as p where p.part_key = k.part_key)
                                                                                          as first_printed_at,
        (select max(p.finished_at) from prints as p where p.part_key = k.part_key)
                                                                                          as last_printed_at,
        (select count(*) from prints as p where p.part_key = k.part_key)
                                                                                          as prints_count,
        (select count(*) from prints as p where p.part_key = k.part_key
         and p.is_success = 1)                                                            as successful_prints,
        (select max(p.bronze_loaded_at) from prints as p where p.part_key = k.part_key)
                                                                                          as bronze_loaded_at
    from changed_keys as k

)

select
    cast(k.part_key as text)                as part_key,
    cast(l.ipn as text)                     as ipn,
    cast(substr(coalesce(l.name, l.filename, l.part_key), 1, 100) as text) as name,
    cast(l.description as text)             as description,
    cast(l.weight_g as real)                as weight_g,
    cast(l.print_time_s as integer)         as print_time_s,
    cast(k.thumbnail_archive_id as integer) as thumbnail_archive_id,
    cast(k.first_printed_at as text)        as first_printed_at,
    cast(k.last_printed_at as text)         as last_printed_at,
    cast(k.prints_count as integer)         as prints_count,
    cast(k.successful_prints as integer)    as successful_prints,
    cast(k.bronze_loaded_at as text)        as bronze_loaded_at
from per_key as k
inner join prints as l on l.print_id = k.latest_print_id
