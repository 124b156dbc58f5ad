//! How a build shares the machine's cores among the models it runs at once: each model's
//! queries are planned for its share of the cores when it starts, so a model that runs alone
//! gets them all and many models at once get one each.

/// The cores a build may use, and how many models it runs at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parallelism {
    pub cores: usize,
    /// Models built at once.
    pub models: usize,
}

impl Parallelism {
    /// The partitions the queries of a model starting now run in, when `others` models are
    /// running or ready to run (of which at most `models - 1` run beside it).
    pub fn partitions(&self, others: usize) -> usize {
        let sharing = (others + 1).min(self.models.max(1));
        (self.cores / sharing).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_gets_its_share_of_the_cores() {
        // (cores, models at once, others) -> partitions
        let cases = [
            ((2, 4, 21), 1),
            ((2, 4, 0), 2),
            ((2, 4, 1), 1),
            ((8, 4, 1), 4),
            ((8, 4, 100), 2),
            ((8, 1, 100), 8),
            ((1, 4, 3), 1),
            ((0, 0, 0), 1),
        ];
        for ((cores, models, others), partitions) in cases {
            let parallelism = Parallelism { cores, models };
            assert_eq!(
                parallelism.partitions(others),
                partitions,
                "{cores} cores, {models} models at once, {others} others"
            );
        }
    }
}
