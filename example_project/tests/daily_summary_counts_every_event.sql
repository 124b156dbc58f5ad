-- Every deduplicated event is counted once in daily_summary: the failing rows are the days
-- whose totals disagree.
select staged.date, staged.events, summary.events as summarized
from (select date, count(*) as events from {{ ref('stg_events') }} group by date) as staged
join (select date, sum(total_events) as events from {{ ref('daily_summary') }} group by date) as summary
  on staged.date = summary.date
where staged.events <> summary.events
