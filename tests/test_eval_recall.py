"""Known-relationship recall follows EFAAR's `known_relationship_benchmark` on maps whose answer is worked out by hand.

The hand map: five genes in 2-D, A=(1,0), B=(1,1), C=(0,1), D=(-1,0), E=(0,-1). With s = 1/sqrt(2) the ten
upper-triangle cosines are AB=s, AC=0, AD=-1, AE=0, BC=s, BD=-s, BE=-s, CD=0, CE=-1, DE=0, so the sorted null is
[-1, -1, -s, -s, 0, 0, 0, 0, s, s] (N = 10), with exact ties (the same floating-point products).
"""

import numpy as np
import pytest

from eval.aggregate import PerturbationMap
from eval.benchmark_common import unit_rows
from eval.context import BenchmarkNotApplicable
from eval.recall import (
    cosine_percentile_ranks,
    default_annotations_dir,
    known_relationship_recall,
    load_relationships,
)
from phenom_data import ANNOTATIONS_DIR

HAND_GENES = {"A": (1, 0), "B": (1, 1), "C": (0, 1), "D": (-1, 0), "E": (0, -1)}
# AB and CE are listed in both orientations, AA is a self-pair, AZ and QR name genes that are not in the map.
HAND_PAIRS = "entity1,entity2\nA,B\nB,A\nC,E\nE,C\nB,D\nA,A\nA,Z\nQ,R\n"


def make_map(rows: list[tuple[str, str, float, tuple]]) -> PerturbationMap:
    """Rows `(label, CRISPR | COMPOUND, concentration, vector)`; labels containing `_control` are controls."""
    labels, types, concentrations, features = zip(*rows, strict=True)
    modalities = np.array(["gene" if kind == "CRISPR" else "compound" for kind in types], dtype=object)
    return PerturbationMap(np.array(labels, dtype=object), np.array(types, dtype=object),
                           np.array(concentrations, dtype=float), np.array(features, dtype=float),
                           np.ones(len(rows), dtype=int), modalities,
                           np.array(["_control" in label for label in labels]))


def hand_map() -> PerturbationMap:
    return make_map([(gene, "CRISPR", np.nan, vector) for gene, vector in HAND_GENES.items()])


@pytest.fixture
def hand_annotations(tmp_path):
    (tmp_path / "TOY.txt").write_text(HAND_PAIRS)
    return tmp_path


def test_recall_counts_each_pair_once_drops_self_pairs_and_pairs_with_a_missing_gene(hand_annotations):
    (result,) = known_relationship_recall(hand_map(), hand_annotations, sources=("TOY",),
                                          thresholds=((0.2, 0.8), (0.1, 0.9)))
    # Unique non-self pairs: AB, CE, BD, AZ, QR; AZ and QR have a gene missing from the map.
    assert (result.annotated_pairs, result.query_size, result.pairs_missing_gene, result.null_size) == (5, 3, 2, 10)
    # AB = s:  left = #{null < s} / N = 8/10, right = #{null <= s} / N = 10/10
    # CE = -1: left = 0/10, right = 2/10
    # BD = -s: left = 2/10, right = 4/10
    # (0.2, 0.8): AB hits (left 0.8 >= 0.8), CE hits (right 0.2 <= 0.2), BD misses -> 2/3.
    assert result.recall["0.2_0.8"] == pytest.approx(2 / 3)
    # (0.1, 0.9): the ties decide. With right rank for the low tail and left rank for the high tail (searchsorted
    # right/left, EFAAR) nothing hits; the opposite sides would count AB (right 1.0) and CE (left 0.0) -> 0, not 2/3.
    assert result.recall["0.1_0.9"] == 0.0


def test_pairs_listed_in_one_or_both_orientations_give_the_same_recall(hand_annotations, tmp_path):
    # Listed once each, in either orientation: the same 2/3 (counting AB and CE twice would give 4/5).
    single = tmp_path / "single"
    single.mkdir()
    (single / "TOY.txt").write_text("entity1,entity2\nB,A\nC,E\nD,B\n")
    (once,) = known_relationship_recall(hand_map(), single, sources=("TOY",), thresholds=((0.2, 0.8),))
    (both,) = known_relationship_recall(hand_map(), hand_annotations, sources=("TOY",), thresholds=((0.2, 0.8),))
    assert once.recall == both.recall == {"0.2_0.8": pytest.approx(2 / 3)}


def test_all_rows_null_adds_control_and_standard_concentration_compound_rows(hand_annotations):
    # Extra rows: the CRISPR control K=(2,1), compound X at 1.0 uM = (-1,2); left out of the null: compound X at a
    # non-standard 0.002 uM and the compound-experiment control (they would change N).
    rows = [(gene, "CRISPR", np.nan, vector) for gene, vector in HAND_GENES.items()]
    rows += [("EMPTY_control", "CRISPR", np.nan, (2, 1)), ("X", "COMPOUND", 1.0, (-1, 2)),
             ("X", "COMPOUND", 0.002, (5, 1)), ("EMPTY_control", "COMPOUND", np.nan, (1, 5))]
    (genes_null,) = known_relationship_recall(make_map(rows), hand_annotations, sources=("TOY",),
                                              thresholds=((0.1, 0.9),))
    (all_rows,) = known_relationship_recall(make_map(rows), hand_annotations, null="all-rows", sources=("TOY",),
                                            thresholds=((0.1, 0.9),))
    assert genes_null.null_size == 10 and genes_null.recall == {"0.1_0.9": 0.0}
    # 7 rows -> 21 cosines. With t = 2/sqrt(5), u = 1/sqrt(5), v = 1/sqrt(10) the eleven new ones are
    # KA=t, KB=3v, KC=u, KD=-t, KE=-u, XA=-u, XB=v, XC=t, XD=u, XE=-t, KX=0. Sorted null:
    # -1,-1,-t,-t,-s,-s,-u,-u,0,0,0,0,0,v,u,u,s,s,t,t,3v.
    # CE = -1: right = 2/21 <= 0.1 -> hit; AB = s: left = 16/21 < 0.9; BD = -s: right = 6/21 -> recall 1/3.
    assert all_rows.null_size == 21
    assert all_rows.recall == {"0.1_0.9": pytest.approx(1 / 3)}


def test_blockwise_ranks_equal_searchsorted_on_the_full_sorted_null():
    # Unit rows with entries +-0.5 or one +-1: every cosine is a multiple of 0.25, computed exactly in any order, so
    # the null is full of exact ties (duplicated rows included) and block and full computations agree bit for bit.
    rng = np.random.default_rng(0)
    halves = rng.choice([-0.5, 0.5], size=(17, 4))
    axes = np.eye(4)[rng.integers(0, 4, size=6)] * rng.choice([-1.0, 1.0], size=(6, 1))
    features = np.concatenate([halves, axes])
    unit = unit_rows(features)
    assert np.array_equal(unit, features)
    pairs = np.array([[0, 1], [3, 7], [2, 22], [5, 9], [0, 22], [10, 11]])
    similarity = unit @ unit.T
    null = np.sort(similarity[np.triu_indices(23, k=1)])
    expected_left = np.searchsorted(null, similarity[pairs[:, 0], pairs[:, 1]], side="left") / len(null)
    expected_right = np.searchsorted(null, similarity[pairs[:, 0], pairs[:, 1]], side="right") / len(null)
    for block_rows in (None, 1, 4, 22):
        values, left, right, null_size = cosine_percentile_ranks(unit, pairs, block_rows=block_rows)
        assert null_size == 253
        np.testing.assert_array_equal(values, similarity[pairs[:, 0], pairs[:, 1]])
        np.testing.assert_array_equal(left, expected_left)
        np.testing.assert_array_equal(right, expected_right)


def test_bundled_annotations_have_the_published_unique_pair_counts():
    # paper.md §8 (EFAAR annotation table): unique undirected pairs per source.
    expected = {"CORUM": 37649, "HuMAP": 58538, "Reactome": 18565, "SIGNOR": 11617, "StringDB": 58059}
    for source, count in expected.items():
        pairs = load_relationships(ANNOTATIONS_DIR, source)
        assert len(pairs) == count, source
        assert (pairs[:, 0] < pairs[:, 1]).all()


def test_a_map_without_any_annotated_pair_is_an_error_not_a_zero(hand_annotations):
    vectors = HAND_GENES.values()
    unnamed = make_map([(f"GENE{index}", "CRISPR", np.nan, vector) for index, vector in enumerate(vectors)])
    with pytest.raises(ValueError, match="no annotated pair of TOY has both genes in the map"):
        known_relationship_recall(unnamed, hand_annotations, sources=("TOY",))


def test_a_gene_map_of_one_gene_is_not_applicable(hand_annotations):
    with pytest.raises(BenchmarkNotApplicable, match="the gene map has 1 genes"):
        known_relationship_recall(make_map([("A", "CRISPR", np.nan, (1, 0))]), hand_annotations, sources=("TOY",))


def test_zero_and_round_off_rows_stay_zero_as_scikit_learn_normalizes_them(hand_annotations):
    # scikit-learn's rule (EFAAR's cosine_similarity): a row with norm below 10 eps is left as it is, so its cosines
    # are 0 (or round-off), never those of a unit vector pointing at the round-off.
    from sklearn.preprocessing import normalize

    rows = np.array([[1.0, 0.0], [0.0, 0.0], [3e-16, -2e-16], [1e-13, 1e-13]])
    np.testing.assert_array_equal(unit_rows(rows), normalize(rows))
    assert np.abs(unit_rows(rows)[2]).max() < 1e-15 and np.linalg.norm(unit_rows(rows)[3]) == pytest.approx(1.0)
    # B = (0, 0): AB, BC, BD, BE cosines are 0, so the null is [-1, -1, 0, 0, 0, 0, 0, 0, 0, 0].
    genes = make_map([(gene, "CRISPR", np.nan, vector) for gene, vector in dict(HAND_GENES, B=(0, 0)).items()])
    (result,) = known_relationship_recall(genes, hand_annotations, sources=("TOY",), thresholds=((0.2, 0.8),))
    # AB = BD = 0: left 2/10, right 10/10, no hit; CE = -1: right 2/10 -> hit: 1/3.
    assert result.recall == {"0.2_0.8": pytest.approx(1 / 3)}


def test_a_missing_annotation_source_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="CORUM.txt"):
        known_relationship_recall(hand_map(), tmp_path, sources=("CORUM",))


def test_label_permutation_baseline_is_reported_per_seed_mean(hand_annotations):
    (result,) = known_relationship_recall(hand_map(), hand_annotations, sources=("TOY",), thresholds=((0.2, 0.8),),
                                          seeds=(0, 1, 2))
    assert set(result.baseline) == {"0.2_0.8"} and 0.0 <= result.baseline["0.2_0.8"] <= 1.0


def test_default_annotations_folder_is_phenom_data_annotations_dir():
    from phenom_data import ANNOTATIONS_DIR as imported

    assert default_annotations_dir().resolve() == imported.resolve()
