use super::*;
use std::time::Instant;

fn tenant(root: &Path, name: &str, settings: &str) {
    std::fs::create_dir_all(root.join(name)).unwrap();
    std::fs::write(root.join(name).join("tenant.yaml"), settings).unwrap();
}

fn setup() -> (tempfile::TempDir, TenantsHandle) {
    let tmp = tempfile::tempdir().unwrap();
    tenant(tmp.path(), "bound", "timezone: UTC\n");
    tenant(tmp.path(), "other", "timezone: UTC\n");
    let handle = TenantsHandle::new(Arc::new(Tenants::load(tmp.path()).unwrap()));
    (tmp, handle)
}

fn bound() -> BTreeSet<String> {
    BTreeSet::from(["bound".to_string()])
}

fn version(h: &TenantsHandle, name: &str) -> Option<String> {
    h.current().get(name).map(|t| t.version.clone())
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_touch_is_no_change_but_an_edit_or_a_new_file_is() {
    let (tmp, _) = setup();
    let file = tmp.path().join("bound/tenant.yaml");
    let mut t = Tracker::default();
    assert!(t.changed(tmp.path()), "the first look is a change");
    assert!(!t.changed(tmp.path()));
    let f = std::fs::File::options().write(true).open(&file).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    assert!(!t.changed(tmp.path()), "same content, new mtime");
    std::fs::write(&file, "timezone: Europe/Berlin\n").unwrap();
    assert!(t.changed(tmp.path()));
    std::fs::write(tmp.path().join("bound/x.yaml"), "rules: []\n").unwrap();
    assert!(t.changed(tmp.path()));
    std::fs::remove_file(tmp.path().join("bound/x.yaml")).unwrap();
    assert!(t.changed(tmp.path()));
    assert!(!t.changed(tmp.path()));
}

#[test]
fn reload_applies_valid_changes_and_refuses_invalid_ones() {
    let (tmp, h) = setup();
    let v0 = version(&h, "bound").unwrap();
    assert_eq!(
        reload(tmp.path(), &h, &bound(), true, None),
        Outcome::Applied(vec![]),
        "nothing changed since the start"
    );
    assert_eq!(h.stats(), ReloadStats::default());

    tenant(tmp.path(), "bound", "timezone: Nowhere/Atlantis\n");
    let Outcome::Refused(errors) = reload(tmp.path(), &h, &bound(), false, None) else {
        panic!("an unknown time zone must be refused");
    };
    assert_eq!(errors[0].line, 1, "{errors:?}");
    assert_eq!(version(&h, "bound"), Some(v0.clone()));

    tenant(tmp.path(), "bound", "timezone: Europe/Berlin\n");
    assert_eq!(
        reload(tmp.path(), &h, &bound(), false, None),
        Outcome::Applied(vec!["bound".into()])
    );
    assert_ne!(version(&h, "bound"), Some(v0));
    assert_eq!(h.stats(), ReloadStats { ok: 1, refused: 1 });
}

#[tokio::test]
async fn watcher_refuses_a_load_that_drops_a_bound_tenant() {
    let (tmp, h) = setup();
    let v0 = version(&h, "bound").unwrap();
    let (stop, stopped) = watch::channel(false);
    let task = spawn_watcher(
        tmp.path().to_path_buf(),
        h.clone(),
        Duration::from_millis(20),
        bound(),
        None,
        stopped,
    );

    std::fs::remove_dir_all(tmp.path().join("bound")).unwrap();
    until("the refusal", || h.stats().refused == 1).await;
    assert_eq!(version(&h, "bound"), Some(v0.clone()), "still serving");
    assert_eq!(h.stats().ok, 0);

    // An unbound tenant may go; the bound one comes back unchanged.
    tenant(tmp.path(), "bound", "timezone: UTC\n");
    std::fs::remove_dir_all(tmp.path().join("other")).unwrap();
    until("the reload", || h.current().get("other").is_none()).await;
    assert_eq!(version(&h, "bound"), Some(v0));
    assert!(h.stats().ok >= 1);

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the watcher stops on shutdown")
        .unwrap();
}

/// Holds back every new version of one tenant; records what went live.
struct HoldBack {
    tenant: &'static str,
    live: std::sync::Mutex<Vec<(String, String)>>,
}

impl Stage for HoldBack {
    fn admit(&self, tenant: &Tenant, all: &Tenants) -> Vec<String> {
        assert!(
            all.get(&tenant.name).is_some(),
            "admitted within its new snapshot"
        );
        if tenant.name == self.tenant {
            vec!["samples/bound/a01: 1 difference".into()]
        } else {
            Vec::new()
        }
    }

    fn applied(&self, tenants: &[Arc<Tenant>]) {
        let mut live = self.live.lock().unwrap();
        live.extend(tenants.iter().map(|t| (t.name.clone(), t.version.clone())));
    }
}

#[test]
fn a_staged_reload_holds_back_one_tenant_and_applies_the_others() {
    let (tmp, h) = setup();
    let (bound0, other0) = (version(&h, "bound").unwrap(), version(&h, "other").unwrap());
    let stage = HoldBack {
        tenant: "bound",
        live: Default::default(),
    };
    tenant(tmp.path(), "bound", "timezone: Europe/Berlin\n");
    tenant(tmp.path(), "other", "timezone: Europe/Berlin\n");
    let outcome = reload(tmp.path(), &h, &bound(), false, Some(&stage));
    assert_eq!(outcome, Outcome::Applied(vec!["other".into()]));
    assert_eq!(version(&h, "bound"), Some(bound0.clone()), "held back");
    let other1 = version(&h, "other").unwrap();
    assert_ne!(other1, other0, "the other tenant's change is live");
    assert_eq!(*stage.live.lock().unwrap(), [("other".to_string(), other1)]);
    assert_eq!(h.stats().refused, 1, "a held change counts as refused");

    // Only the held tenant changes again: nothing goes live, the reason is given.
    tenant(tmp.path(), "bound", "timezone: Asia/Tokyo\n");
    let Outcome::Refused(errors) = reload(tmp.path(), &h, &bound(), false, Some(&stage)) else {
        panic!("refused")
    };
    assert_eq!(version(&h, "bound"), Some(bound0.clone()));
    assert!(
        errors[0].message.ends_with(&format!(
            "held back, {bound0} keeps serving: samples/bound/a01: 1 difference"
        )),
        "{}",
        errors[0]
    );
    assert_eq!(
        stage.live.lock().unwrap().len(),
        1,
        "nothing more went live"
    );
}
