{#- dbt-sqlite's table materialization drops the old table before it builds the new one, so a model
    cannot read its previous version ({{ this }}). Build under a temporary name, then swap: what
    silver_print_jobs needs to keep silver_built_at for rows that did not change. -#}
{% materialization table, adapter='sqlite' %}
  {%- set identifier = model['alias'] -%}
  {%- set old_relation = adapter.get_relation(database=database, schema=schema, identifier=identifier) -%}
  {%- set target_relation = api.Relation.create(identifier=identifier, schema=schema, database=database,
                                                type='table') -%}
  {%- set tmp_relation = api.Relation.create(identifier=identifier ~ '__dbt_tmp', schema=schema,
                                             database=database, type='table') -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {{ adapter.drop_relation(tmp_relation) }}  {#- a leftover of a build that died #}
  {% call statement('main') -%}
    {{ create_table_as(False, tmp_relation, sql) }}
  {%- endcall %}
  {% if old_relation is not none %}
    {{ adapter.drop_relation(old_relation) }}
  {% endif %}
  {{ adapter.rename_relation(tmp_relation, target_relation) }}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {% do persist_docs(target_relation, model) %}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
