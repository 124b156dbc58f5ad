{{ config(materialized='partitioned', partition_by='date', tags=['daily']) }}
select
    date,
    cohort,
    sum(revenue) as revenue,
    count(distinct user_id) as user_count,
    count(*) as total_events
from {{ ref('stg_events') }}
{{ date_filter() }}
group by date, cohort
