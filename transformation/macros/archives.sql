{#- The latest version of each Bambuddy archive (bronze_archive_versions keeps them all): a rename or
    status change in Bambuddy shows in whatever reads this. -#}
{% macro latest_archive_versions(versions) %}
    select *
    from (
        select v.*, row_number() over (partition by archive_id order by version_at desc) as version_rank
        from {{ versions }} as v
    )
    where version_rank = 1
{% endmacro %}
