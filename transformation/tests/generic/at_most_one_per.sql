{# No value of `column_name` (when not null) appears on more than one row: e.g. one MQTT job
   enriches at most one Bambuddy run. #}
{% test at_most_one_per(model, column_name) %}
select {{ column_name }}, count(*) as n
from {{ model }}
where {{ column_name }} is not null
group by {{ column_name }}
having count(*) > 1
{% endtest %}
