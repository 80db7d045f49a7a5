//! The database's plan of a query, for the tests and the benchmark that check that lists and
//! searches walk an index: `EXPLAIN` on PostgreSQL, `EXPLAIN QUERY PLAN` on SQLite, with the
//! query's own bind values.

use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Integer, Text};
use diesel::{QueryResult, RunQueryDsl};

use super::{DbConn, MultiBackend};

/// `EXPLAIN <query>` (PostgreSQL): one text row per plan line.
struct Explain<Q>(Q);

/// `EXPLAIN QUERY PLAN <query>` (SQLite): (id, parent, unused, detail) per plan step.
struct ExplainQueryPlan<Q>(Q);

impl<Q> QueryId for Explain<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> QueryId for ExplainQueryPlan<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: QueryFragment<MultiBackend>> QueryFragment<MultiBackend> for Explain<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql("EXPLAIN ");
        self.0.walk_ast(out.reborrow())
    }
}

impl<Q: QueryFragment<MultiBackend>> QueryFragment<MultiBackend> for ExplainQueryPlan<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql("EXPLAIN QUERY PLAN ");
        self.0.walk_ast(out.reborrow())
    }
}

impl<Q> Query for Explain<Q> {
    type SqlType = Text;
}

impl<Q> Query for ExplainQueryPlan<Q> {
    type SqlType = (Integer, Integer, Integer, Text);
}

impl<Q> RunQueryDsl<DbConn> for Explain<Q> {}
impl<Q> RunQueryDsl<DbConn> for ExplainQueryPlan<Q> {}

/// The plan of `query` on `conn`'s database, one line per step.
pub fn plan<Q>(conn: &mut DbConn, query: Q) -> QueryResult<Vec<String>>
where
    Q: QueryFragment<MultiBackend>,
{
    match conn {
        DbConn::Pg(_) => Explain(query).load::<String>(conn),
        DbConn::Sqlite(_) => Ok(ExplainQueryPlan(query)
            .load::<(i32, i32, i32, String)>(conn)?
            .into_iter()
            .map(|(_, _, _, detail)| detail)
            .collect()),
    }
}
