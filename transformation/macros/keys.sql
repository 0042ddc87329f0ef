{#- Identity rules of DESIGN.md ("Identities"), shared by the silver models. -#}

{#- A name or file name made into a part key: lower case, without 3MF/G-code extensions,
    separators turned into '-'. SQLite has no regexp, hence the replace() chain. -#}
{% macro clean_key(expr) -%}
    nullif(trim(
        replace(replace(replace(replace(replace(replace(replace(replace(replace(
            lower(trim(
                case
                    when lower({{ expr }}) like '%.gcode.3mf' then substr({{ expr }}, 1, length({{ expr }}) - 10)
                    when lower({{ expr }}) like '%.3mf' then substr({{ expr }}, 1, length({{ expr }}) - 4)
                    when lower({{ expr }}) like '%.gcode' then substr({{ expr }}, 1, length({{ expr }}) - 6)
                    else {{ expr }}
                end)),
            ' ', '-'), '_', '-'), '/', '-'), '\', '-'), '.', '-'), ':', '-'), '|', '-'), '--', '-'), '--', '-'),
        '-'), '')
{%- endmacro %}

{#- First non-empty of the PART_KEY_FIELDS columns (content_hash, filename, print_name, name). -#}
{% macro part_key(relation_alias='') -%}
    {%- set prefix = relation_alias ~ '.' if relation_alias else '' -%}
    {%- set fields = var('part_key_fields').split(',') -%}
    coalesce(
    {%- for f in fields %}
        {%- set col = prefix ~ f.strip() %}
        {%- if f.strip() == 'content_hash' %}
        nullif(lower(trim({{ col }})), ''),
        {%- else %}
        {{ clean_key(col) }},
        {%- endif %}
    {%- endfor %}
        'unnamed')
{%- endmacro %}

{#- An 8-hex checksum computable in plain SQLite (no md5/sha there): a position-weighted sum of
    code points modulo a 32-bit prime. Python twin in tests: sum(ord(c) * ((i * 2654435761) %
    4294967291) for i, c in enumerate(key, 1)) % 4294967291. -#}
{% macro short_hash(expr) -%}
    (with recursive seq(n) as (select 1 union all select n + 1 from seq where n < length({{ expr }}))
     select printf('%08x', sum(unicode(substr({{ expr }}, n, 1)) * ((n * 2654435761) % 4294967291)) % 4294967291)
     from seq)
{%- endmacro %}

{#- IPN = <prefix>-<key>, at most 100 characters: a longer key is cut and suffixed with its hash. -#}
{% macro ipn(key_expr) -%}
    {%- set prefix = var('ipn_prefix') -%}
    case
        when length('{{ prefix }}-' || {{ key_expr }}) <= 100 then '{{ prefix }}-' || {{ key_expr }}
        else '{{ prefix }}-' || substr({{ key_expr }}, 1, {{ 100 - (prefix | length) - 10 }}) || '-' || {{ short_hash(key_expr) }}
    end
{%- endmacro %}

{#- UTC ISO-8601 with 'Z' from the raw layer's strings (already UTC). -#}
{% macro utc(expr) -%}
    cast(case when {{ expr }} is null or {{ expr }} = '' then null
              else strftime('%Y-%m-%dT%H:%M:%SZ', {{ expr }}) end as text)
{%- endmacro %}

{#- Columns of tables built with CREATE TABLE AS keep a type only when cast: dbt's unit tests
    read the types back from the table (dbt-sqlite trap in DESIGN.md). -#}
{% macro now_utc() -%}
    cast(strftime('%Y-%m-%dT%H:%M:%fZ', 'now') as text)
{%- endmacro %}

{#- Incremental bronze reads only raw rows written since the last load (minus an hour of margin
    for commit delays and clock skew between writers); the anti-join on the key still decides
    what is new, so the margin can only re-read rows, never miss one. -#}
{% macro raw_since_last_load(updated_column) -%}
    {%- if is_incremental() -%}
    {{ updated_column }} > coalesce(
        (select strftime('%Y-%m-%dT%H:%M:%fZ', julianday(max(loaded_at)) - 1.0 / 24) from {{ this }}), '')
    {%- else -%}
    1 = 1
    {%- endif -%}
{%- endmacro %}

{#- A raw writer's timestamp kept to the millisecond (versions of one row differ by less than a second). -#}
{% macro utc_ms(expr) -%}
    cast(case when {{ expr }} is null or {{ expr }} = '' then null
              else strftime('%Y-%m-%dT%H:%M:%fZ', {{ expr }}) end as text)
{%- endmacro %}

{#- A file name that names a model, or null: printers report generic paths for cloud prints
    (/data/Metadata/plate_N.gcode) and Bambuddy's fallback archive copies them; an empty name or a
    bare extension is no name either. These never make a part key, from any source. -#}
{% macro model_file(expr) -%}
    case
        when {{ expr }} is null or trim({{ expr }}) = '' then null
        when lower({{ expr }}) like '%/metadata/plate\_%' escape '\' then null
        when lower(replace({{ expr }}, rtrim({{ expr }}, replace({{ expr }}, '/', '')), '')) glob 'plate_[0-9]*.gcode' then null
        when lower(replace({{ expr }}, rtrim({{ expr }}, replace({{ expr }}, '/', '')), '')) in ('.gcode', '.3mf', '.gcode.3mf', 'plate.gcode') then null
        else replace({{ expr }}, rtrim({{ expr }}, replace({{ expr }}, '/', '')), '')
    end
{%- endmacro %}
