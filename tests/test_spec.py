"""Registry behaviour, suite parsing, precedence and validation (DESIGN.md "Configuration")."""
import pytest

from gkd_bench.registry import DATASETS, MODELS, Registry, UnknownNameError
from gkd_bench.spec import SuiteError, expand, load_suite, parse_seeds

BASE = {
    "name": "t", "seeds": "0-1", "datasets": {"cora": {"protocol": "planetoid"}},
    "train": {"epochs": 5, "lr": 0.01},
    "models": {"gcn": {"model": "gcn", "hidden": 32}, "mlp": {"model": "mlp", "train": {"lr": 0.05}}},
    "distillers": {"none": {}, "kd": {"lam": 0.7}},
    "experiments": [{"student": ["gcn", "mlp"], "distiller": "none"},
                    {"teacher": "gcn", "student": "mlp", "distiller": "kd"}],
}


def test_registry_duplicates_and_unknown_names():
    reg = Registry("thing")
    reg.register("alpha")(lambda: 1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("alpha")(lambda: 2)
    with pytest.raises(UnknownNameError) as e:
        reg.get("alpah")
    assert "did you mean alpha" in str(e.value) and "Available things: alpha" in str(e.value)


def test_unknown_dataset_names_close_matches():
    with pytest.raises(UnknownNameError) as e:
        DATASETS.get("coraa")
    assert "cora" in str(e.value) and "citeseer" in str(e.value)


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("1,5") == [1, 5]
    assert parse_seeds(7) == [7]
    with pytest.raises(SuiteError, match="seeds"):
        parse_seeds("3-1")


def test_expand_grid_resolves_defaults_and_precedence():
    specs = expand(BASE)
    assert len(specs) == 3 * 2
    gcn = next(s for s in specs if s.student["label"] == "gcn")
    # suite value beats factory default; factory defaults are filled in
    assert gcn.student["hparams"]["hidden"] == 32
    assert gcn.student["hparams"]["num_layers"] == 2
    mlp_kd = next(s for s in specs if s.distiller["label"] == "kd")
    assert mlp_kd.student["train"]["lr"] == 0.05 and mlp_kd.student["train"]["epochs"] == 5
    assert mlp_kd.teacher["hparams"]["hidden"] == 32
    assert mlp_kd.distiller["hparams"] == {"lam": 0.7, "T": 1.0, "kl_reduction": "batchmean", "kd_nodes": "all"}
    # per-dataset override beats suite, --set beats override
    suite = {**BASE, "overrides": {"cora": {"models": {"gcn": {"hidden": 48}}}}}
    assert next(s for s in expand(suite) if s.student["label"] == "gcn").student["hparams"]["hidden"] == 48
    s2 = expand(suite, sets=["models.gcn.hidden=16"])
    assert next(s for s in s2 if s.student["label"] == "gcn").student["hparams"]["hidden"] == 16


def test_config_id_ignores_seed_but_not_hyperparameters():
    a = expand(BASE)
    same_cfg = [s for s in a if s.student["label"] == "gcn"]
    assert same_cfg[0].config_id == same_cfg[1].config_id
    assert same_cfg[0].run_id != same_cfg[1].run_id
    b = expand(BASE, sets=["models.gcn.dropout=0.1"])
    assert next(s for s in b if s.student["label"] == "gcn").config_id != same_cfg[0].config_id


def test_filters_narrow_and_compose_ad_hoc_runs():
    specs = expand(BASE, distillers=["kd"], seeds="0")
    assert [(s.teacher["label"], s.student["label"]) for s in specs] == [("gcn", "mlp")]
    adhoc = expand(BASE, teachers=["gat"], students=["mlp"], distillers=["kd"], seeds="0")
    assert adhoc[0].teacher["model"] == "gat" and adhoc[0].teacher["hparams"]["heads"] == 8


@pytest.mark.parametrize("patch,match", [
    ({"models": {"gcn": {"model": "gcn", "hiden": 3}}}, r"unknown hyperparameter\(s\) \['hiden'\]"),
    ({"train": {"epoch": 3}}, r"unknown train option"),
    ({"distillers": {"kd": {"temperature": 2}}}, r"distiller 'kd': unknown hyperparameter"),
    ({"experiments": [{"student": "mlp", "distiller": "kd"}]}, "needs a teacher"),
    ({"datasets": {"cora": {"protcol": "x"}}}, "unknown option"),
])
def test_bad_suites_raise_clear_errors(patch, match):
    with pytest.raises(SuiteError, match=match):
        expand({**BASE, **patch})


def test_experiment_distiller_overrides_apply_to_that_experiment_only():
    """An experiment's own ``distillers:`` settings (G-CRD's SIGN scripts use other loss weights) are
    deep-merged over the suite's entry for that experiment's runs; the label stays the entry's name;
    a grid given there replaces the suite's grid of that hyperparameter and keeps its seeds."""
    suite = {**BASE, "distillers": {"none": {}, "kd": {"lam": 0.7, "search": {"T": [1.0, 2.0], "seeds": "0"}}},
             "experiments": [{"teacher": "gcn", "student": "mlp", "distiller": "kd"},
                             {"teacher": "gcn", "student": "gcn", "distiller": "kd",
                              "distillers": {"kd": {"lam": 0.2, "search": {"T": [4.0, 8.0, 16.0]}}}}]}
    specs = expand(suite)
    mlp = [s for s in specs if s.student["label"] == "mlp"]
    gcn = [s for s in specs if s.student["label"] == "gcn"]
    assert {s.distiller["label"] for s in specs} == {"kd"}
    assert {(s.distiller["hparams"]["lam"], s.distiller["hparams"]["T"]) for s in mlp} == {(0.7, 1.0), (0.7, 2.0)}
    assert {(s.distiller["hparams"]["lam"], s.distiller["hparams"]["T"]) for s in gcn} == {
        (0.2, 4.0), (0.2, 8.0), (0.2, 16.0)}
    assert {s.seed for s in gcn} == {0}  # stage 1 on the suite's search seeds
    assert suite["distillers"]["kd"]["lam"] == 0.7  # the suite dict itself is not changed
    # --set keeps the last word, also over an experiment's own settings
    forced = expand(suite, sets=["distillers.kd.lam=0.9", "distillers.kd.search=null"])
    assert {(s.student["label"], s.distiller["hparams"]["lam"], s.distiller["hparams"]["T"]) for s in forced} == {
        ("mlp", 0.9, 1.0), ("gcn", 0.9, 1.0)}


@pytest.mark.parametrize("exp, match", [
    ({"teacher": "gcn", "student": "mlp", "distiller": "kd", "distiller_overrides": {}},
     r"experiment 1: unknown key\(s\) \['distiller_overrides'\]"),
    ({"teacher": "gcn", "student": "mlp", "distiller": "kd", "distillers": {"fitnet": {"beta": 1.0}}},
     r"overrides \['fitnet'\], which the experiment does not run"),
    ({"teacher": "gcn", "student": "mlp", "distiller": "kd", "distillers": {"kd": 0.5}},
     "'distillers' must map distiller labels to their settings"),
    ({"teacher": "gcn", "student": "mlp", "distiller": "kd", "distillers": {"kd": {"tau": 2}}},
     r"distiller 'kd': unknown hyperparameter"),
])
def test_bad_experiment_overrides_are_errors(exp, match):
    with pytest.raises(SuiteError, match=match):
        expand({**BASE, "experiments": [BASE["experiments"][0], exp]})


def test_student_distiller_filter_skips_a_dataset_whose_experiments_lack_them():
    """`--student mlp --distiller kd` on a suite where one dataset's override runs other experiments:
    that dataset has nothing to run (kd needs a teacher, and no --teacher names one); an error only when
    no dataset has runs, and it says why."""
    suite = {**BASE, "datasets": {"cora": {"protocol": "planetoid"}, "citeseer": {"protocol": "planetoid"}},
             "overrides": {"citeseer": {"experiments": [{"student": "gcn", "distiller": "none"}]}}}
    specs = expand(suite, students=["mlp"], distillers=["kd"], seeds="0")
    assert [(s.dataset, s.teacher["label"], s.student["label"]) for s in specs] == [("cora", "gcn", "mlp")]
    with pytest.raises(SuiteError, match=r"nothing to run after the filters \(citeseer: distiller\(s\) \['kd'\] "
                                         r"need a teacher \(--teacher\)\)"):
        expand(suite, datasets=["citeseer"], students=["mlp"], distillers=["kd"])
    adhoc = expand(suite, datasets=["citeseer"], teachers=["gcn"], students=["mlp"], distillers=["kd"], seeds="0")
    assert [(s.dataset, s.teacher["label"]) for s in adhoc] == [("citeseer", "gcn")]
    # only the distillers that need a teacher are left out: `none` still runs ad hoc there
    mixed = expand(suite, datasets=["citeseer"], students=["mlp"], distillers=["none", "kd"], seeds="0")
    assert [(s.dataset, s.teacher, s.distiller["label"]) for s in mixed] == [("citeseer", None, "none")]


def test_unknown_names_in_suite_raise_before_training():
    with pytest.raises(UnknownNameError, match="unknown model 'gcnn'"):
        expand({**BASE, "models": {"gcn": {"model": "gcnn"}}})
    with pytest.raises(UnknownNameError, match="unknown dataset"):
        expand(BASE, datasets=["nosuch"])
    with pytest.raises(SuiteError, match="--set"):
        expand(BASE, sets=["nonsense"])


def test_malformed_yaml_names_the_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: bad\nseeds: 0-1\ndatasets:\n  cora: {protocol: planetoid\ntrain: {}\n")
    with pytest.raises(SuiteError, match=r"bad.yaml, line \d+"):
        load_suite(str(p))
    p.write_text("name: x\nbogus: 1\n")
    with pytest.raises(SuiteError, match="unknown key"):
        load_suite(str(p))


def test_shipped_suites_expand():
    for name in ("default", "smoke"):
        assert expand(load_suite(name))
    with pytest.raises(SuiteError, match="unknown suite"):
        load_suite("nosuchsuite")


def test_every_model_factory_has_in_dim_and_num_classes():
    import inspect

    for name in MODELS:
        params = inspect.signature(MODELS.get(name)).parameters
        assert "in_dim" in params and "num_classes" in params, name


def test_default_suite_teacher_settings_per_dataset_family():
    """GAT row-normalises its input on Planetoid only; SAGE uses GLNN's gcn aggregator where validation
    preferred it (cora, amazon-computers, amazon-photo) and GraphSAGE's mean aggregator elsewhere."""
    from gkd_bench.spec import expand, load_suite

    gat, sage = {}, {}
    for s in expand(load_suite("default"), seeds=[0]):
        for role in (s.student, s.teacher):
            if role and role["model"] == "gat":
                gat.setdefault(s.dataset, set()).add(role["hparams"].get("input_norm"))
            if role and role["model"] == "sage":
                sage.setdefault(s.dataset, set()).add(role["hparams"].get("aggregator", "mean"))
    assert {d for d, v in gat.items() if v == {"l1"}} == {"cora", "citeseer", "pubmed"}
    assert all(v == {None} for d, v in gat.items() if d not in ("cora", "citeseer", "pubmed"))
    assert {d for d, v in sage.items() if v == {"gcn"}} == {"cora", "amazon-computers", "amazon-photo"}
    assert sage["citeseer"] == sage["texas"] == sage["chameleon"] == sage["ppi"] == {"mean"}


def test_gcrd_available_student_settings_on_the_amazon_sets():
    """gcrd-available: both students (GCN, SAGE) scale their input rows to unit L2 norm on the two Amazon sets
    only (raw inputs kill their 16 ReLU units there; L1 rows without weight decay outrun the 500-epoch cap)
    and keep weight decay 5e-4;
    the GAT teacher keeps raw inputs everywhere, and the students keep them on every other dataset."""
    from gkd_bench.spec import expand, load_suite

    seen = {}
    for s in expand(load_suite("gcrd-available"), seeds=[0]):
        for role in (s.student, s.teacher):
            if role:
                key = (role["hparams"].get("input_norm"), role["train"]["weight_decay"])
                seen.setdefault((role["model"], s.dataset), set()).add(key)
    amazon = {"amazon-computers", "amazon-photo"}
    for student in ("gcn", "sage"):
        assert {d for (m, d), v in seen.items() if m == student and v == {("l2", 5e-4)}} == amazon
    assert all(v == {(None, 5e-4)} for (m, d), v in seen.items() if m == "gat" or d not in amazon), seen
    assert {d for m, d in seen} >= amazon | {"cora", "coauthor-cs"}


def test_no_shipped_suite_reads_cornell_through_the_refused_geom_gcn_file():
    """The data root's Geom-GCN cornell feature file is Texas's (the loader refuses it); every shipped suite
    that runs cornell reads Platonov et al.'s copy with the same 10 splits."""
    from gkd_bench.spec import expand, load_suite

    protocols = {}
    for name in ("default", "gcrd-available", "sa-mlp", "alignahead", "robustness", "glnn"):
        for s in expand(load_suite(name), seeds=[0]):
            if s.dataset == "cornell":
                protocols.setdefault(name, set()).add(s.protocol)
    assert protocols["gcrd-available"] == protocols["default"] == {"platonov"}
    assert all(v == {"platonov"} for v in protocols.values())


def test_alignahead_students_scale_bag_of_words_rows_to_unit_l2_norm():
    """alignahead: every GAT student (K = 1 to 4) scales its input rows to unit L2 norm on coauthor-cs and the
    two Amazon sets, whose raw binary bag-of-words cost the GAT alone 4-11 points (suite header), and keeps the
    Planetoid sets' L1-normalised rows as they are."""
    from gkd_bench.spec import expand, load_suite

    norm = {}
    for s in expand(load_suite("alignahead"), seeds=[0]):
        norm.setdefault(s.dataset, set()).add(s.student["hparams"].get("input_norm"))
    bag_of_words = {"coauthor-cs", "amazon-computers", "amazon-photo"}
    assert {d for d, v in norm.items() if v == {"l2"}} == bag_of_words
    assert all(v == {None} for d, v in norm.items() if d not in bag_of_words), norm
    assert {"cora", "citeseer"} <= set(norm)
