//! SCHEDULE: the one scheduler of the engine. It hands out the nodes of a DAG (the check's
//! planning, a build's models) as soon as every node they wait for has finished, lowest index
//! (execution order) first.

use std::collections::BTreeSet;

/// Which nodes may start, given which have finished.
#[derive(Debug)]
pub struct Scheduler {
    /// How many nodes each node still waits for.
    waiting: Vec<usize>,
    /// The nodes that wait for each node.
    dependents: Vec<Vec<usize>>,
    ready: BTreeSet<usize>,
    started: Vec<bool>,
}

impl Scheduler {
    /// `nodes` nodes, none waiting yet.
    pub fn new(nodes: usize) -> Self {
        Self {
            waiting: vec![0; nodes],
            dependents: vec![Vec::new(); nodes],
            ready: (0..nodes).collect(),
            started: vec![false; nodes],
        }
    }

    /// `node` waits for `on`; `None` is a node that never finishes (outside the schedule).
    pub fn add_wait(&mut self, node: usize, on: Option<usize>) {
        self.waiting[node] += 1;
        self.ready.remove(&node);
        if let Some(on) = on {
            self.dependents[on].push(node);
        }
    }

    /// The next node that may start, if any.
    pub fn next_ready(&mut self) -> Option<usize> {
        let node = self.ready.pop_first()?;
        self.started[node] = true;
        Some(node)
    }

    /// How many nodes may start now.
    pub fn ready(&self) -> usize {
        self.ready.len()
    }

    /// `node` finished: the nodes that waited only for it may start.
    pub fn finish(&mut self, node: usize) {
        for &dependent in &self.dependents[node] {
            self.waiting[dependent] -= 1;
            if self.waiting[dependent] == 0 && !self.started[dependent] {
                self.ready.insert(dependent);
            }
        }
    }

    /// The nodes that never started: they wait for a node that never finished, or for each
    /// other.
    pub fn never_started(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.started.len()).filter(|&node| !self.started[node])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_start_in_order_once_what_they_wait_for_finished() {
        // 0 -> 2, 1 -> 2, 2 -> 3; 4 waits for something outside.
        let mut scheduler = Scheduler::new(5);
        scheduler.add_wait(2, Some(0));
        scheduler.add_wait(2, Some(1));
        scheduler.add_wait(3, Some(2));
        scheduler.add_wait(4, None);
        assert_eq!(scheduler.next_ready(), Some(0));
        assert_eq!(scheduler.next_ready(), Some(1));
        assert_eq!(scheduler.next_ready(), None);
        scheduler.finish(1);
        assert_eq!(scheduler.next_ready(), None);
        scheduler.finish(0);
        assert_eq!(scheduler.next_ready(), Some(2));
        scheduler.finish(2);
        assert_eq!(scheduler.next_ready(), Some(3));
        assert_eq!(scheduler.never_started().collect::<Vec<_>>(), [4]);
    }
}
