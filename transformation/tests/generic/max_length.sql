{# Fails for every row whose column is longer than `length` characters (InvenTree field limits). #}
{% test max_length(model, column_name, length) %}
select {{ column_name }} as value, length({{ column_name }}) as actual_length
from {{ model }}
where length({{ column_name }}) > {{ length }}
{% endtest %}
