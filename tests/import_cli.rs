//! `splitbrain import` and `check --format kafka-verifiable` on small
//! hand-written outputs of Kafka's verifiable clients (no cluster).

mod common;

const PRODUCER: &str = r#"{"timestamp":100,"name":"startup_complete"}
{"timestamp":110,"name":"producer_send_success","key":null,"value":"0","offset":0,"topic":"t","partition":0}
{"timestamp":111,"name":"producer_send_success","key":null,"value":"1","offset":1,"topic":"t","partition":0}
{"timestamp":112,"name":"producer_send_error","topic":"t","key":null,"value":"2","exception":"class org.apache.kafka.common.errors.NetworkException","message":"Disconnected from node 3"}
{"timestamp":113,"name":"producer_send_success","key":null,"value":"3","offset":3,"topic":"t","partition":0}
"#;

const CONSUMER: &str = r#"{"timestamp":100,"name":"startup_complete"}
{"timestamp":105,"name":"partitions_assigned","partitions":[{"topic":"t","partition":0}]}
{"timestamp":120,"name":"record_data","key":null,"value":"0","topic":"t","partition":0,"offset":0}
{"timestamp":120,"name":"record_data","key":null,"value":"1","topic":"t","partition":0,"offset":1}
{"timestamp":120,"name":"record_data","key":null,"value":"2","topic":"t","partition":0,"offset":2}
{"timestamp":120,"name":"record_data","key":null,"value":"3","topic":"t","partition":0,"offset":3}
{"timestamp":121,"name":"records_consumed","count":4,"partitions":[{"topic":"t","partition":0,"count":4,"minOffset":0,"maxOffset":3}]}
"#;

#[test]
fn import_writes_a_history_that_check_judges_as_check_format_does() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.jsonl");
    let c = dir.path().join("c.jsonl");
    std::fs::write(&p, PRODUCER).unwrap();
    // Message 1 dropped from the consumer: read past, so lost.
    std::fs::write(&c, CONSUMER.replace(
        "{\"timestamp\":120,\"name\":\"record_data\",\"key\":null,\"value\":\"1\",\"topic\":\"t\",\"partition\":0,\"offset\":1}\n",
        "",
    ))
    .unwrap();
    let (ps, cs) = (p.to_str().unwrap(), c.to_str().unwrap());
    let h = dir.path().join("history.jsonl");
    let out = common::run(&[
        "import",
        "--format",
        "kafka-verifiable",
        "--producer",
        ps,
        "--consumer",
        cs,
        "-o",
        h.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", common::text(&out));
    let direct = common::run(&[
        "check",
        "--format",
        "kafka-verifiable",
        "--producer",
        ps,
        "--consumer",
        cs,
    ]);
    let imported = common::run(&["check", h.to_str().unwrap()]);
    assert_eq!(direct.status.code(), Some(1), "{}", common::text(&direct));
    assert_eq!(
        imported.status.code(),
        Some(1),
        "{}",
        common::text(&imported)
    );
    let first = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(first(&direct), first(&imported));
    assert!(
        first(&direct).contains("lost-write 1"),
        "{}",
        common::text(&direct)
    );

    // The complete stream: valid; the NetworkException send was written.
    std::fs::write(&c, CONSUMER).unwrap();
    let out = common::run(&[
        "check",
        "--format",
        "kafka-verifiable",
        "--producer",
        ps,
        "--consumer",
        cs,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));

    // Usage errors say what to do.
    let out = common::run(&["check", "--format", "kafka-verifiable", "--consumer", cs]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::text(&out).contains("--producer"),
        "{}",
        common::text(&out)
    );
}
