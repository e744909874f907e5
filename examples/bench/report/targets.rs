//! The `## Targets` section: each section adds its goals, measured and pass/miss.

use std::fmt::Write as _;

use crate::config::Cfg;
use crate::stats::pass;

#[derive(Default)]
pub struct Targets(Vec<(String, String, String, bool)>);

impl Targets {
    pub fn add(&mut self, what: &str, target: &str, measured: String, ok: bool) {
        self.0.push((what.into(), target.into(), measured, ok));
    }

    /// The section, with the benchmark's notes under it.
    pub fn section(&self, cfg: &Cfg) -> String {
        let mut head = String::new();
        let _ = writeln!(head, "\n## Targets\n\n| target | goal | measured | |\n|---|---|---|---|");
        for (what, goal, got, ok) in &self.0 {
            let _ = writeln!(head, "| {what} | {goal} | {got} | {} |", pass(*ok));
        }
        if !cfg.notes.is_empty() {
            let _ = writeln!(head, "\nNotes:");
            for n in &cfg.notes {
                let _ = writeln!(head, "- {n}");
            }
        }
        head
    }
}
