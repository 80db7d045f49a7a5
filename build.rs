// The migrations are embedded in the binary (`db::PG_MIGRATIONS`, `db::SQLITE_MIGRATIONS`):
// rebuild when one is added or changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
