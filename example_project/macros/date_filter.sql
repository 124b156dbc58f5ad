{#- Restricts a model to the partition named by `--vars date=...`; without it, every date. -#}
{% macro date_filter(column='date') -%}
{%- if var('date', none) %}where {{ column }} = '{{ var("date") }}'{% endif -%}
{%- endmacro %}
