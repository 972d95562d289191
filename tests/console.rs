//! The support console in a real browser (headless Chromium over WebDriver): log in with a
//! token, find a dead letter by its code, see it masked, preview and replay it, and find
//! the replay in the audit log; browse messages and a stream; another tenant's pages are
//! 404; forms without the session's CSRF token are refused; every control is labelled.
//! A screenshot of each page is kept beside the test output.

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use common::{Adt, SendAdt, Server};
use std::time::{Duration, Instant};
use webdriver::Browser;

/// Inputs and selects without a label, on the page shown.
const UNLABELLED: &str = "return [...document.querySelectorAll('input:not([type=hidden]),select')]\
    .filter(e => !e.id || !document.querySelector('label[for=\"' + e.id + '\"]')).length";

/// Fails when the page shown has an input or select without a label.
async fn labelled(b: &Browser) {
    assert_eq!(
        b.run(UNLABELLED).await,
        0,
        "unlabelled controls on {}",
        b.url().await
    );
}

#[tokio::test]
async fn support_logs_in_finds_a_letter_by_code_previews_replays_and_sees_the_audit_entry() {
    let Some((driver, chromium)) = webdriver::installed() else {
        assert!(
            std::env::var_os("INTAKE_REQUIRE_BROWSER").is_none(),
            "chromium and chromedriver are required (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: no chromium/chromedriver (scripts/test installs them)");
        return;
    };
    common::set_backend(common::Backend::Sqlite);
    let server = Server::start();
    let mut c = server.client().await;
    c.ack(Adt {
        trigger: "A04",
        control_id: "W1",
        visit: "WV1",
        ..Default::default()
    })
    .await;
    c.ack(Adt {
        trigger: "A01",
        control_id: "W2",
        visit: "WV2",
        ..Default::default()
    })
    .await;
    let token = server.demo_token("desk", "support,phi").await;
    let base = format!("http://{}", server.http);
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    eprintln!("screenshots: {}", shots.display());

    let b = Browser::start(&driver, &chromium).await;
    let shot = |name: &str| shots.join(format!("{name}.png"));

    // A page behind the login sends there; a wrong token is refused.
    b.goto(&format!("{base}/console/t/demo")).await;
    assert!(b.url().await.ends_with("/console/login"));
    let field = b.find("#token").await;
    b.type_into(&field, "not-a-token\u{E007}").await;
    b.source_when(|p| p.contains("That token is not valid."))
        .await;
    // The token file is re-read when requests come: log in until the new token works.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let field = b.find("#token").await;
        b.type_into(&field, &format!("{token}\u{E007}")).await; // Enter: keyboard only
        if b.url().await.ends_with("/console/t/demo") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "login failed: {}",
            b.source().await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.goto(&format!("{base}/console/login")).await;
    }
    let cookie = b.cookie("intake_session").await;
    assert_eq!(
        (cookie["httpOnly"].as_bool(), cookie["sameSite"].as_str()),
        (Some(true), Some("Strict")),
        "{cookie}"
    );
    labelled(&b).await;
    b.screenshot(&shot("1-dashboard")).await;
    let dashboard = b.source().await;
    assert!(
        dashboard.contains("Open dead letters by code")
            && dashboard.contains("UNMAPPED_MESSAGE_TYPE")
    );

    // Dead letters by code, then the letter: masked.
    let by_code = b.link("UNMAPPED_MESSAGE_TYPE").await;
    b.click(&by_code).await;
    b.source_when(|p| p.contains("Dead letters, newest first"))
        .await;
    labelled(&b).await;
    b.screenshot(&shot("2-dead-letters")).await;
    let letter = b.find("td a[href*='/dead-letters/']").await;
    b.click(&letter).await;
    b.source_when(|p| p.contains("Structure (values masked)"))
        .await;
    labelled(&b).await;
    b.screenshot(&shot("3-dead-letter")).await;
    let letter_url = b.url().await;
    let page = b.source().await;
    assert!(page.contains("Structure (values masked)") && page.contains("W1"));
    assert!(
        !page.contains("Doe") && !page.contains("MRN-WV1"),
        "masked by default"
    );

    // Still unmapped: the preview says so. Fix the mapping; the preview shows the event.
    let preview = b.find("form[action$='/preview'] button").await;
    b.click(&preview).await;
    b.source_when(|p| p.contains("It still fails")).await;
    server.add_a04_rule("demo");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        b.goto(&letter_url).await;
        let preview = b.find("form[action$='/preview'] button").await;
        b.click(&preview).await;
        let shown = b.source_when(|p| p.contains("Replay preview")).await;
        if shown.contains("would append 1 event(s)") {
            break;
        }
        assert!(Instant::now() < deadline, "mapping not reloaded");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    labelled(&b).await;
    b.screenshot(&shot("4-replay-preview")).await;
    assert!(b.source().await.contains("PatientRegistered"));
    let reason = b.find("#replay-reason").await;
    b.type_into(&reason, "A04 rule added").await;
    let replay = b.find("form[action$='/replay'] button").await;
    b.click(&replay).await;
    b.source_when(|p| p.contains("Replayed: 1 event(s) appended."))
        .await;
    b.screenshot(&shot("5-replayed")).await;

    // The audit log has the replay, by the token's name, with the reason.
    b.goto(&format!("{base}/console/t/demo/audit")).await;
    let audit = b.source().await;
    assert!(
        audit.contains("DeadLettersReplayed")
            && audit.contains("desk")
            && audit.contains("A04 rule added"),
        "{audit}"
    );
    b.screenshot(&shot("6-audit")).await;

    // Messages, a key search (phi), one visit's stream in order, the mapping versions.
    b.goto(&format!("{base}/console/t/demo/messages")).await;
    labelled(&b).await;
    let messages = b.source().await;
    assert!(messages.contains("W1") && messages.contains("W2") && !messages.contains("Doe"));
    b.screenshot(&shot("7-messages")).await;
    let mrn = b.find("#mrn").await;
    b.type_into(&mrn, "MRN-WV2\u{E007}").await;
    b.source_when(|p| p.contains(">W2<") && !p.contains(">W1<"))
        .await;
    let event = b.link("AdmissionCreated (v1)").await;
    b.click(&event).await;
    b.source_when(|p| p.contains("Stream: Admission")).await;
    b.screenshot(&shot("8-stream")).await;
    b.goto(&format!("{base}/console/t/demo/mappings")).await;
    assert!(b.source().await.contains("Live version"));
    b.screenshot(&shot("9-mappings")).await;

    // The raw message, with the phi scope: shown, and audited.
    b.goto(&format!("{base}/console/t/demo/dead-letters?status=all"))
        .await;
    let letter = b.find("td a[href*='/dead-letters/']").await;
    b.click(&letter).await;
    b.source_when(|p| p.contains("Structure (values masked)"))
        .await;
    let raw = b.find("form[action$='/raw'] button").await;
    b.click(&raw).await;
    b.source_when(|p| p.contains("Doe^Alex")).await; // the raw view shows the message
    b.goto(&format!("{base}/console/t/demo/audit")).await;
    assert!(b.source().await.contains("RawMessageViewed"));

    // Another tenant's pages do not exist for this token.
    b.goto(&format!("{base}/console/t/strict/dead-letters"))
        .await;
    assert!(b.source().await.contains("There is no such page."));

    // A form without the session's CSRF token is refused, even with the cookie.
    let session = cookie["value"].as_str().unwrap();
    let http = reqwest::Client::new();
    let forged = http
        .post(format!(
            "{base}/console/t/demo/dead-letters/00000000-0000-0000-0000-000000000000/discard"
        ))
        .header("cookie", format!("intake_session={session}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=forged&reason=x")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // Logging out ends the session.
    b.goto(&format!("{base}/console/t/demo")).await;
    let logout = b.find("form[action='/console/logout'] button").await;
    b.click(&logout).await;
    b.source_when(|p| p.contains("<h1>Log in</h1>")).await;
    b.goto(&format!("{base}/console/t/demo")).await;
    assert!(b.url().await.ends_with("/console/login"));
}
