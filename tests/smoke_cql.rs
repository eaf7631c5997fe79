//! Smoke test of the real CQL store: a keyspace of the test's own, a table, a prepared
//! write and a read back.

use keel_testkit::{TestKeyspace, TestResult};

#[tokio::test]
async fn prepared_write_reads_back_in_own_keyspace() -> TestResult {
    let keyspace = TestKeyspace::create("smoke_cql").await?;
    let session = keyspace.session();
    session
        .query_unpaged("CREATE TABLE greetings (id int PRIMARY KEY, text text, at bigint)", &[])
        .await?;

    let insert = session
        .prepare("INSERT INTO greetings (id, text, at) VALUES (?, ?, ?)")
        .await?;
    for (id, text) in [(1, "hello"), (2, "world")] {
        session.execute_unpaged(&insert, (id, text, i64::from(id) * 10)).await?;
    }

    let rows = session
        .query_unpaged("SELECT id, text, at FROM greetings WHERE id = ?", (2,))
        .await?
        .into_rows_result()?;
    let read: Vec<(i32, String, i64)> = rows.rows::<(i32, String, i64)>()?.collect::<Result<_, _>>()?;
    assert_eq!(read, [(2, "world".to_owned(), 20)]);

    let release: Vec<(String,)> = session
        .query_unpaged("SELECT release_version FROM system.local", &[])
        .await?
        .into_rows_result()?
        .rows::<(String,)>()?
        .collect::<Result<_, _>>()?;
    eprintln!(
        "cql smoke: keyspace {} on release {:?}",
        keyspace.name(),
        release.first().map(|(version,)| version)
    );
    keyspace.drop().await
}
