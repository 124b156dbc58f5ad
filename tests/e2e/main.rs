//! End-to-end tests: the real `dp` binary on copies of example_project and of the fixture
//! projects under tests/fixtures/, each in its own temporary folder.

mod audit;
mod build;
mod cluster;
#[path = "../services/ballista.rs"]
mod cluster_services;
mod crash;
mod dbt;
mod dbt_duckdb;
mod dbt_packages;
mod dbt_snapshots;
mod deep;
mod diff;
mod docs;
mod duckdb;
mod errors;
mod operations;
mod reliability;
mod s3;
mod select;
#[path = "../services/mod.rs"]
mod services;
mod support;
