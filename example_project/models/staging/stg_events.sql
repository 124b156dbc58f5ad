{{ config(materialized='partitioned', partition_by='date') }}
-- One row per event: a delivery repeated by the collector is dropped.
select event_id, user_id, event, revenue, cohort, ts, date
from (
    select *, row_number() over (partition by event_id order by ts) as delivery
    from {{ source('raw', 'events') }}
    {{ date_filter() }}
)
where delivery = 1
