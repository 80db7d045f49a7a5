-- PostgreSQL's keys now name the project (for a sharded PostgreSQL, see the PostgreSQL
-- migration of the same name). SQLite is never sharded: its keys stay as they are, and this
-- migration keeps the two folders in step.
SELECT 1;
