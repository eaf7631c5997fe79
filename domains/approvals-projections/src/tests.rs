//! Tests without a server: the statements against the schema and the row types, the rows
//! each event plans, the sealed fields as the real codec seals them, days and totals.

mod days;
mod planning;
mod sealing;
mod statements;
