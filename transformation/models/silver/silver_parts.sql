{#- One row per part key: what InvenTree's Part should say, from the prints of that part.
    Weight and print time are medians over the part's successful prints: a stable value that one
    odd print (a failed first layer re-run, a slow reprint) does not move. Rebuilt in full, like
    silver_print_jobs. -#}
{{ config(
    materialized='table',
    post_hook="create unique index if not exists ux_silver_parts on silver_parts (part_key)"
) }}

with prints as (

    select * from {{ ref('silver_print_jobs') }}

),

ranked as (

    select
        p.*,
        -- the latest successful print describes the part (else the latest print at all)
        row_number() over (partition by part_key
                           order by is_success desc, finished_at desc, print_id desc) as describe_rank
    from prints as p

),

{% for col in ('weight_g', 'print_time_s') %}
median_{{ col }} as (

    select part_key, avg({{ col }}) as {{ col }}
    from (
        select part_key, {{ col }},
               row_number() over (partition by part_key order by {{ col }}, print_id) as n,
               count(*) over (partition by part_key) as total
        from prints
        where is_success = 1 and {{ col }} is not null
    )
    where n in ((total + 1) / 2, (total + 2) / 2)
    group by part_key

),
{% endfor %}

per_key as (

    select
        part_key,
        min(finished_at)                                   as first_printed_at,
        max(finished_at)                                   as last_printed_at,
        count(*)                                           as prints_count,
        sum(is_success)                                    as successful_prints,
        max(bronze_loaded_at)                              as bronze_loaded_at
    from prints
    group by part_key

),

thumbnails as (

    select part_key, bambuddy_archive_id as thumbnail_archive_id
    from (
        select part_key, bambuddy_archive_id,
               row_number() over (partition by part_key order by finished_at desc, print_id desc) as n
        from prints
        where has_thumbnail = 1 and bambuddy_archive_id is not null
    )
    where n = 1

)

select
    cast(k.part_key as text)                as part_key,
    cast(l.ipn as text)                     as ipn,
    cast(substr(coalesce(l.name, l.filename, l.part_key), 1, 100) as text) as name,
    cast(l.description as text)             as description,
    cast(w.weight_g as real)                as weight_g,
    cast(round(t.print_time_s) as integer)  as print_time_s,
    cast(th.thumbnail_archive_id as integer) as thumbnail_archive_id,
    cast(k.first_printed_at as text)        as first_printed_at,
    cast(k.last_printed_at as text)         as last_printed_at,
    cast(k.prints_count as integer)         as prints_count,
    cast(k.successful_prints as integer)    as successful_prints,
    cast(k.bronze_loaded_at as text)        as bronze_loaded_at
from per_key as k
inner join ranked as l on l.part_key = k.part_key and l.describe_rank = 1
left join median_weight_g as w on w.part_key = k.part_key
left join median_print_time_s as t on t.part_key = k.part_key
left join thumbnails as th on th.part_key = k.part_key
