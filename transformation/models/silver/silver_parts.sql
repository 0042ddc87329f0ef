{#- One row per part key: what InvenTree's Part should say, from the prints of that part. -#}

with prints as (

    select * from {{ ref('silver_print_jobs') }}

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
        sum(is_success)                     as successful_prints
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
    cast(s.successful_prints as integer)    as successful_prints
from latest as l
inner join stats as s on s.part_key = l.part_key
left join thumbnails as t on t.part_key = l.part_key
