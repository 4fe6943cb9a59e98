//! jiesuan (结算): a server-rendered web shop whose checkout and payment are done right.
//! The module map; `startup` is shared by `main` and the tests.

pub mod assets;
pub mod config;
pub mod controllers;
pub mod db;
pub mod domain;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod models;
pub mod payment;
pub mod routes;
pub mod sandbox;
pub mod services;
pub mod startup;
pub mod validators;
pub mod views;
