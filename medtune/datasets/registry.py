"""The registry of named corpora: what each is, where its files come from, how it is split.

A :class:`DatasetSpec` is pure data. The files of a corpus live under ``<data dir>/<spec.folder>/``
exactly as its source repository holds them (``MEDTUNE_DATA_DIR`` points at the data dir). Each
:class:`DataFile` names its official source URL (a raw GitHub URL at a fixed commit) with the size and
SHA-256 of the file, so that a download is verified byte for byte.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from medtune.datasets.codiesp import CODIESP_SPEC_FIELDS
from medtune.datasets.deid import DEID_FILES, DEID_SOURCE, DEID_SPEC_FIELDS
from medtune.datasets.medquad import MEDQUAD_SPEC_FIELDS
from medtune.datasets.qa import COVID_QA_FILE, COVID_QA_SENTENCES_FIELDS, COVID_QA_SOURCE, COVID_QA_SPEC_FIELDS
from medtune.errors import DatasetNotFoundError

SPLITS = ("train", "dev", "test")

#: Other spellings accepted for split names.
SPLIT_ALIASES = {"devel": "dev", "validation": "dev", "valid": "dev", "val": "dev"}


def _raw(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


@dataclass(frozen=True)
class DataFile:
    """One source file of a corpus.

    ``path`` is relative to ``<data dir>/<folder>/``; ``splits`` lists the splits that need the file
    (``None``: every split).
    """

    path: str
    url: str
    sha256: str
    size: int
    splits: tuple[str, ...] | None = None

    def needed_for(self, split: str) -> bool:
        return self.splits is None or split in self.splits


@dataclass(frozen=True)
class DatasetSpec:
    """A named corpus. See the module docstring."""

    name: str
    task: str  # "ner" | "classification" | "relation" | "assertion" | "linking" | "qa" | "retrieval" | "coding"
    description: str
    labels: tuple[str, ...]
    licence: str
    citation: str
    folder: str
    source: str  # "owner/repo @ commit"
    files: tuple[DataFile, ...]
    split_note: str
    loader: str
    splits: tuple[str, ...] = SPLITS
    multi_label: bool = False
    pair: bool = False
    #: Paths (under the folder) that must exist besides ``files``; a trailing "/" marks a folder.
    manual_paths: tuple[str, ...] = ()
    #: ``None`` when every needed file can be downloaded; otherwise why not and how to get them.
    download_unsupported: str | None = None
    #: Extra keyword arguments of the loader, as ``((key, value), ...)`` (kept hashable).
    loader_args: tuple[tuple[str, Any], ...] = ()
    #: How info() counts sentences: "documents" (each document is one sentence), "metadata"
    #: (len(doc.metadata["sentences"])) or None (not meaningful: no sentence split in the source).
    sentence_count: str | None = None
    intended_use: str | None = None  # what the card of a model trained on it must tell its users

    @property
    def downloadable(self) -> bool:
        return self.download_unsupported is None

    def files_for(self, split: str) -> tuple[DataFile, ...]:
        return tuple(f for f in self.files if f.needed_for(split))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "description": self.description,
            "labels": list(self.labels),
            "multi_label": self.multi_label,
            "pair": self.pair,
            "licence": self.licence,
            "citation": self.citation,
            "folder": self.folder,
            "source": self.source,
            "splits": list(self.splits),
            "split_note": self.split_note,
            "files": [
                {"path": f.path, "url": f.url, "sha256": f.sha256, "size": f.size,
                 "splits": list(f.splits) if f.splits is not None else list(self.splits)}
                for f in self.files
            ],
            "manual_paths": list(self.manual_paths),
            "downloadable": self.downloadable,
            "download_note": self.download_unsupported,
            "sentence_count": self.sentence_count,
            "intended_use": self.intended_use,
        }


# --------------------------------------------------------------------------------------- sources
_NCBI = ("spyysalo/ncbi-disease", "5a266c6")
_BMIP = ("cambridgeltl/bmip-2018", "0b66ee9")
_MTL = ("cambridgeltl/MTL-Bioinformatics-2016", "df0df02")
_HOC = ("sb895/Hallmarks-of-Cancer", "3bc6e6d")
_HSLN = ("jind11/HSLN-Joint-Sentence-Classification", "08f1442")
_ELECTRA = ("SciCrunch/bio_electra", "7a53526")
_PQA = ("pubmedqa/pubmedqa", "1cbae8e")
_ADE = ("trunghlt/AdverseDrugReaction", "2851af9")


def _src(source: tuple[str, str]) -> str:
    return f"{source[0]} @ {source[1]}"


def _file(source: tuple[str, str], local: str, remote: str, sha256: str, size: int,
          splits: tuple[str, ...] | None = None) -> DataFile:
    return DataFile(path=local, url=_raw(source[0], source[1], remote), sha256=sha256, size=size,
                    splits=splits)


_ADE_FILES = (
    _file(_ADE, "DRUG-AE.rel", "ADE-Corpus-V2/DRUG-AE.rel",
          "542cdc483ccc94927762eaf2c9a8ecac49a6c10037dda2895be6a6e20160f75a", 1423024),
    _file(_ADE, "ADE-NEG.txt", "ADE-Corpus-V2/ADE-NEG.txt",
          "8f506c159042ce354fbf26981dc39971dde8f09b1158d94106eab1e516e53fcf", 2308469),
)
_ADE_LICENCE = "none stated; research use; cite Gurulingappa et al. 2012"
_ADE_CITATION = ("Gurulingappa H, Rajput AM, Roberts A, Fluck J, Hofmann-Apitius M, Toldo L. Development of a "
                 "benchmark corpus to support the automatic extraction of drug-related adverse effects from "
                 "medical case reports. J Biomed Inform 2012;45(5):885-892")
_ADE_SPLIT = ("No official split. Split by PMID: bucket = int(sha256(PMID as ASCII), 16) % 100; buckets 0-79 -> "
              "train, 80-89 -> dev, 90-99 -> test. Duplicates are removed by (PMID, sentence) before splitting; "
              "the same sentence under two PMIDs stays twice.")


#: HoC: the 10 top-level hallmarks as written in the label files -> the short names we use.
HOC_HALLMARKS: dict[str, str] = {
    "Sustaining proliferative signaling": "proliferative_signaling",
    "Evading growth suppressors": "evading_growth_suppressors",
    "Resisting cell death": "resisting_cell_death",
    "Enabling replicative immortality": "replicative_immortality",
    "Inducing angiogenesis": "angiogenesis",
    "Activating invasion and metastasis": "invasion_metastasis",
    "Genomic instability and mutation": "genomic_instability",
    "Tumor promoting inflammation": "tumor_promoting_inflammation",
    "Cellular energetics": "cellular_energetics",
    "Avoiding immune destruction": "avoiding_immune_destruction",
}

_NCBI_FILES = (
    _file(_NCBI, "original-data/train/NCBItrainset_corpus.txt",
          "original-data/train/NCBItrainset_corpus.txt",
          "f311381b28a6d0f641f57f4a963bb83619c2bdec5cd9caabb1381f894d5db817", 1045967, ("train",)),
    _file(_NCBI, "original-data/devel/NCBIdevelopset_corpus.txt",
          "original-data/devel/NCBIdevelopset_corpus.txt",
          "02db559974624ae9cbe6cd95d64d953e6926bb63afb6b25b63e53bd8b41a4b55", 178373, ("dev",)),
    _file(_NCBI, "original-data/test/NCBItestset_corpus.txt",
          "original-data/test/NCBItestset_corpus.txt",
          "61c8050bf6979ef7b943ec1158dfc03b651ea3367d4c37356f9de4841e85c9a3", 189219, ("test",)),
)

# The source repository README calls the folder BC5-CDR/original/; the local copy (byte-for-byte the
# source) names it original-data/, which is what the URLs below use.
_BC5CDR_FILES = (
    _file(_BMIP, "original-data/CDR_TrainingSet.PubTator.txt",
          "BC5-CDR/original-data/CDR_TrainingSet.PubTator.txt",
          "7afcec134e3d4871e74b0398d92850d3c9ac94c0bdc780003f2d60184c012bd8", 1129998, ("train",)),
    _file(_BMIP, "original-data/CDR_DevelopmentSet.PubTator.txt",
          "BC5-CDR/original-data/CDR_DevelopmentSet.PubTator.txt",
          "9e18d8e700168887a7919e62f67ac2ce2357e3f409a48ee992906abdd80fe3e5", 1127990, ("dev",)),
    _file(_BMIP, "original-data/CDR_TestSet.PubTator.txt",
          "BC5-CDR/original-data/CDR_TestSet.PubTator.txt",
          "a3c48d5f35bdfce20c2371778abedc9fd24d1da092207072e5181ad53c8d0e2f", 1168687, ("test",)),
)

_BC5CDR_CITATION = (
    "Li J, Sun Y, Johnson RJ, Sciaky D, Wei CH, Leaman R, Davis AP, Mattingly CJ, Wiegers TC, Lu Z. "
    "BioCreative V CDR task corpus: a resource for chemical disease relation extraction. "
    "Database (Oxford) 2016:baw068. doi:10.1093/database/baw068"
)
_BC5CDR_NOTE = ("Official BioCreative V CDR split: train = CDR_TrainingSet, dev = CDR_DevelopmentSet, "
                "test = CDR_TestSet (500 abstracts each).")
_BC5CDR_LICENCE = "public domain mark (BigBio card); cite Li et al. 2016"

_SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        name="ncbi-disease",
        task="ner",
        description="NCBI disease corpus: PubMed abstracts (title + abstract) with disease mentions "
                    "normalised to MeSH/OMIM. All four mention types (SpecificDisease, DiseaseClass, "
                    "Modifier, CompositeMention) are labelled 'Disease'; the original type is kept in "
                    "span.attributes['type'].",
        labels=("Disease",),
        licence="public domain (NLM)",
        citation="Dogan RI, Leaman R, Lu Z. NCBI disease corpus: a resource for disease name recognition "
                 "and concept normalization. J Biomed Inform 2014;47:1-10. doi:10.1016/j.jbi.2013.12.006",
        folder="ncbi_disease",
        source=_src(_NCBI),
        files=_NCBI_FILES,
        split_note="Official split: train = NCBItrainset, dev = NCBIdevelopset ('devel'), test = "
                   "NCBItestset. The train file holds PMID 8528200 twice, identically; the second copy "
                   "is dropped (593 -> 592 training documents).",
        loader="ncbi",
    ),
    DatasetSpec(
        name="bc5cdr",
        task="ner",
        description="BioCreative V CDR: PubMed abstracts with chemical and disease mentions (MeSH ids) "
                    "and document-level chemical-induced-disease (CID) relations "
                    "(metadata['id_relations'] and Relation objects between mentions).",
        labels=("Chemical", "Disease"),
        licence=_BC5CDR_LICENCE,
        citation=_BC5CDR_CITATION,
        folder="bc5cdr",
        source=_src(_BMIP),
        files=_BC5CDR_FILES,
        split_note=_BC5CDR_NOTE,
        loader="bc5cdr",
    ),
    DatasetSpec(
        name="bc5cdr-chem",
        task="ner",
        description="BioCreative V CDR, chemical mentions only (a view of bc5cdr; relations dropped).",
        labels=("Chemical",),
        licence=_BC5CDR_LICENCE,
        citation=_BC5CDR_CITATION,
        folder="bc5cdr",
        source=_src(_BMIP),
        files=_BC5CDR_FILES,
        split_note=_BC5CDR_NOTE,
        loader="bc5cdr",
        loader_args=(("only", "Chemical"),),
    ),
    DatasetSpec(
        name="bc5cdr-disease",
        task="ner",
        description="BioCreative V CDR, disease mentions only (a view of bc5cdr; relations dropped).",
        labels=("Disease",),
        licence=_BC5CDR_LICENCE,
        citation=_BC5CDR_CITATION,
        folder="bc5cdr",
        source=_src(_BMIP),
        files=_BC5CDR_FILES,
        split_note=_BC5CDR_NOTE,
        loader="bc5cdr",
        loader_args=(("only", "Disease"),),
    ),
    DatasetSpec(
        name="bc2gm",
        task="ner",
        description="BioCreative II gene mention corpus in IOB2 (MTL-Bioinformatics-2016 copy): one "
                    "document per sentence (tokens joined by spaces), entity type GENE.",
        labels=("GENE",),
        licence="CC BY 4.0 (MTL-Bioinformatics-2016 collection) + BioCreative II terms",
        citation="Smith L, Tanabe LK, et al. Overview of BioCreative II gene mention recognition. Genome "
                 "Biol 2008;9(Suppl 2):S2. Crichton G, Pyysalo S, Chiu B, Korhonen A. A neural network "
                 "multi-task learning approach to biomedical named entity recognition. BMC Bioinformatics "
                 "2017;18:368",
        folder="mtl_ner",
        source=_src(_MTL),
        files=(
            _file(_MTL, "BC2GM-IOB/train.tsv", "data/BC2GM-IOB/train.tsv",
                  "46e17f4e1509483b82c03f27d6f0214020f738fb71704356fb3445eb824ab38d", 2894167, ("train",)),
            _file(_MTL, "BC2GM-IOB/devel.tsv", "data/BC2GM-IOB/devel.tsv",
                  "33a94577aa22f1e70ec9e02781a05baa4e1390e866d28bf2b344888e4e3d4103", 577660, ("dev",)),
            _file(_MTL, "BC2GM-IOB/test.tsv", "data/BC2GM-IOB/test.tsv",
                  "30d7a4f571ca8ed22a044528063ba5d0388d666d8b8b329733d6927e5fb30764", 1165057, ("test",)),
        ),
        split_note="Split of the MTL-Bioinformatics-2016 collection: train.tsv / devel.tsv / test.tsv "
                   "(its devel set was split off the official BioCreative II training set; test is the "
                   "official test set).",
        loader="bc2gm",
        sentence_count="documents",
    ),
    DatasetSpec(
        name="hoc",
        task="classification",
        description="Hallmarks of Cancer: PubMed abstracts, multi-label over the 10 top-level hallmarks. "
                    "One document per abstract (sentences joined by ' ', offsets in "
                    "metadata['sentences'], per-sentence labels in metadata['sentence_labels']); labels "
                    "= union over sentences; abstracts without any hallmark have labels []. Label names: "
                    + "; ".join(f"'{k}' -> {v}" for k, v in HOC_HALLMARKS.items())
                    + ". Subclasses (after '--') and 'NULL' are dropped.",
        labels=tuple(HOC_HALLMARKS.values()),
        licence="GPL-3.0",
        citation="Baker S, Silins I, Guo Y, Ali I, Hogberg J, Stenius U, Korhonen A. Automatic semantic "
                 "classification of scientific literature according to the hallmarks of cancer. "
                 "Bioinformatics 2016;32(3):432-440. doi:10.1093/bioinformatics/btv585",
        folder="hoc",
        source=_src(_HOC),
        files=(),
        manual_paths=("text/", "labels/"),
        split_note="No official split. Split by PMID: bucket = int(sha256(PMID as ASCII), 16) % 100; "
                   "buckets 0-69 -> train, 70-79 -> dev, 80-99 -> test.",
        loader="hoc",
        sentence_count="metadata",
        multi_label=True,
        download_unsupported=(
            "HoC is 3,704 small files (text/<PMID>.txt and labels/<PMID>.txt); medtune does not fetch "
            "them one by one. Get them with `git clone https://github.com/sb895/Hallmarks-of-Cancer` "
            "(commit 3bc6e6d) and copy its text/ and labels/ folders"
        ),
    ),
    DatasetSpec(
        name="nicta-piboso",
        task="classification",
        description="NICTA-PIBOSO (ALTA 2012): sentence role classification in medical abstracts, one "
                    "document per sentence (metadata: abstract_id, sentence_index); 6 labels. Multi-label "
                    "sentences were reduced to one label by the HSLN authors (majority vote).",
        labels=("background", "intervention", "other", "outcome", "population", "study design"),
        licence="unclear (ALTA-NICTA 2012 challenge); research use",
        citation="Kim SN, Martinez D, Cavedon L, Yencken L. Automatic classification of sentences to "
                 "support Evidence Based Medicine. BMC Bioinformatics 2011;12(Suppl 2):S5. Processed by "
                 "Jin D, Szolovits P. Hierarchical neural networks for sequential sentence classification "
                 "in medical scientific abstracts. EMNLP 2018",
        folder="nicta_piboso",
        source=_src(_HSLN),
        files=(
            _file(_HSLN, "train_clean.txt", "data/nicta_piboso/train_clean.txt",
                  "89dd5b28a4a70982b14de3ff82d6cc8e496c133167dc20feb4a3213b4bafd9af", 1088950, ("train",)),
            _file(_HSLN, "dev_clean.txt", "data/nicta_piboso/dev_clean.txt",
                  "981961ab2cf6016d0892739fc00fb9c36f0b3761d0f5238d8d5d5583f09a0d7a", 130868, ("dev",)),
            _file(_HSLN, "test_clean.txt", "data/nicta_piboso/test_clean.txt",
                  "71f1010d99ae1aa25abb8f04f13ee9fb6c78a460769beb6c6f1cbba6d1e1a0e2", 311157, ("test",)),
        ),
        split_note="Split of the HSLN copy: train_clean / dev_clean / test_clean (720 / 80 / 200 "
                   "abstracts).",
        loader="nicta",
        sentence_count="documents",
    ),
    DatasetSpec(
        name="chemprot",
        task="classification",
        description="ChemProt chemical-protein relation classification, one document per sentence and "
                    "entity pair (target chemical BC6ENTC, target gene BC6ENTG, others BC6OTHER); labels "
                    "CPR:3, CPR:4, CPR:5, CPR:6, CPR:9 and 'False' (no relation), as in the files.",
        labels=("CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9", "False"),
        licence="original corpus: public domain mark; this processed copy: unclear",
        citation="Krallinger M, Rabal O, Akhondi SA, et al. Overview of the BioCreative VI "
                 "chemical-protein interaction track. Proc BioCreative VI Workshop 2017:141-146. Processed "
                 "copy: Ozyurt IB. On the effectiveness of small, discriminatively pre-trained language "
                 "representation models for biomedical text mining. SDP 2020 (SciCrunch/bio_electra)",
        folder="chemprot",
        source=_src(_ELECTRA),
        files=(
            _file(_ELECTRA, "train.tsv", "electra/data/finetuning_data/chemprot/train.tsv",
                  "f69f85e7b449defe6bec4eea7005114293c2fc4919b9fb474411b9120239439b", 3941541, ("train",)),
            _file(_ELECTRA, "dev.tsv", "electra/data/finetuning_data/chemprot/dev.tsv",
                  "71be2ade9dce952da88f09dc61fbc309f96d9698fbd64e6ef4cb597f3d87c3be", 2533230, ("dev",)),
            _file(_ELECTRA, "test.tsv", "electra/data/finetuning_data/chemprot/test.tsv",
                  "9b9774a598cbdbeb89894b4117cf35d102331860e91f4aed1e2ff8cc839cf2f0", 3604929, ("test",)),
        ),
        split_note="Split of the source copy: train.tsv / dev.tsv / test.tsv (the official ChemProt "
                   "training / development / test sets).",
        loader="chemprot",
        sentence_count="documents",
    ),
    DatasetSpec(
        name="gad",
        task="classification",
        description="GAD gene-disease association, binary sentence classification with masked entities "
                    "(@GENE$, @DISEASE$); labels '1' (association) and '0', as in the files.",
        labels=("0", "1"),
        licence="CC BY 4.0",
        citation="Bravo A, Pinero J, Queralt-Rosinach N, Rautschka M, Furlong LI. Extraction of relations "
                 "between genes and diseases from text and large-scale data analysis: implications for "
                 "translational research. BMC Bioinformatics 2015;16:55. BioBERT fold 1: Lee J, et al. "
                 "BioBERT. Bioinformatics 2020;36(4):1234-1240",
        folder="gad",
        source=_src(_ELECTRA),
        files=(
            _file(_ELECTRA, "train.tsv", "electra/data/finetuning_data/gad/train.tsv",
                  "21e3765852a13cf03e6e759e201c5ad2d18b10d3ab05a8ac6bd7510f18f68fec", 845495,
                  ("train", "dev")),
            _file(_ELECTRA, "test.tsv", "electra/data/finetuning_data/gad/test.tsv",
                  "68fe2b2bddefac2cd5d35b4bc8a13bceee95ee9a582a623632981e893cdb512e", 102294, ("test",)),
        ),
        split_note="BioBERT fold 1. test = test.tsv. Upstream dev.tsv is a copy of test.tsv and is not "
                   "used: dev is made from train.tsv by row index i (0-based, over data rows): rows with "
                   "int(sha256(str(i)), 16) % 100 < 10 -> dev (about 10 %), the others -> train.",
        loader="gad",
        sentence_count="documents",
    ),
    DatasetSpec(
        name="pubmedqa",
        task="classification",
        description="PubMedQA (PQA-L): yes/no/maybe questions over a PubMed abstract. text = CONTEXTS "
                    "joined by ' ' (offsets in metadata['contexts']), text_pair = QUESTION (encoded "
                    "first), labels = [final_decision]; LONG_ANSWER in metadata['long_answer'].",
        labels=("yes", "no", "maybe"),
        licence="MIT",
        citation="Jin Q, Dhingra B, Liu Z, Cohen WW, Lu X. PubMedQA: a dataset for biomedical research "
                 "question answering. EMNLP-IJCNLP 2019:2567-2577",
        folder="pubmedqa",
        source=_src(_PQA),
        files=(
            _file(_PQA, "ori_pqal.json", "data/ori_pqal.json",
                  "8b3276be8942ebbd77f3ddcda12c1749bf0e490045a736fd8438ee40cf37a41d", 2584787),
            _file(_PQA, "test_ground_truth.json", "data/test_ground_truth.json",
                  "939fe566f09017d13b1ca64d2ddfee0bc2374b366048152997669cccedc44d51", 11414),
        ),
        split_note="test = the 500 official test PMIDs of test_ground_truth.json. The other 500 PMIDs "
                   "are sorted by sha256(PMID as ASCII) (hex): the first 50 -> dev, the other 450 -> "
                   "train.",
        loader="pubmedqa",
        pair=True,
    ),
    DatasetSpec(
        name="ade-classification",
        task="classification",
        description="ADE corpus v2 sentence classification: sentences of PubMed case reports that do "
                    "('ADE', unique (PMID, sentence) pairs of DRUG-AE.rel) or do not ('noADE', "
                    "ADE-NEG.txt) describe an adverse drug effect. One document per unique (PMID, "
                    "sentence); a pair in both files counts as positive.",
        labels=("ADE", "noADE"),
        licence=_ADE_LICENCE,
        citation=_ADE_CITATION,
        folder="ade_corpus_v2",
        source=_src(_ADE),
        files=_ADE_FILES,
        split_note=_ADE_SPLIT,
        loader="ade",
        sentence_count="documents",
    ),
)

_NEGEX = ("chapmanbe/negex", "d136b972b5d214959807ad5de1881a3225541fe7")
_BIONLPLAB = ("bionlplab/assertion_classification", "8394917b801f7d1f2c0aac2cc50c95ca83677c40")
_BIONLPLAB_CITATION = ("Wang S, Tang L, Majety A, Rousseau JF, Shih G, Ding Y, Peng Y. Trustworthy assertion "
                       "classification through prompting. J Biomed Inform 2022;132:104139")

_SPECS = _SPECS + (
    DatasetSpec(
        name="negex",
        task="assertion",
        description="NegEx/ConText test kit: 2,376 clinical sentences, each with one target concept and its "
                    "negation (Affirmed/Negated), temporality (Recent/Historical/Not particular = "
                    "hypothetical) and experiencer (Patient/Other). One document per row; the concept is a "
                    "'Concept' span with gold values in attributes['gold'] and attributes['assertion'] "
                    "(present/negated). A test set only: never tune on it.",
        labels=("present", "negated"),
        licence="Apache-2.0 (GenNegEx); research use",
        citation="Chapman WW, Bridewell W, Hanbury P, Cooper GF, Buchanan BG. A simple algorithm for "
                 "identifying negated findings and diseases in discharge summaries. J Biomed Inform "
                 "2001;34(5):301-310. Harkema H et al. ConText. J Biomed Inform 2009;42(5):839-851",
        folder="negex_annotations",
        source=_src(_NEGEX),
        files=(_file(_NEGEX, "rsAnnotations-1-120-random.txt", "rsAnnotations-1-120-random.txt",
                     "63763b4dcd97e7874dd3162b8a87103f8205bbe1a0f1f64669ad3f29e97b53c8", 366626),),
        splits=("test",),
        split_note="Test only (the whole kit). Concepts not found in their sentence keep a whole-sentence "
                   "span (counted in the notes).",
        loader="negex",
        sentence_count="documents",
    ),
    DatasetSpec(
        name="assertion",
        task="assertion",
        description="Assertion of a concept (present / negated / uncertain) from the bionlplab benchmark: "
                    "train and dev are BioScope (clinical radiology; rows without a concept are skipped) "
                    "and Chia (trial eligibility criteria), test is its NegEx copy (present / negated). "
                    "One document per row, the concept a 'Concept' span with attributes['assertion'].",
        labels=("present", "negated", "uncertain"),
        licence="repo MIT; BioScope CC BY 2.0; Chia CC BY 4.0; NegEx Apache-2.0",
        citation=_BIONLPLAB_CITATION,
        folder="assertion_bionlplab",
        source=_src(_BIONLPLAB),
        files=(
            _file(_BIONLPLAB, "bioscope/bioscope.csv", "data/bioscope/bioscope.csv",
                  "3471494eadf0eddd107e1c077971bdafcfe1fe8d9070042f453f33f37c65ac22", 749579, ("train", "dev")),
            _file(_BIONLPLAB, "chia/chia_without_scope_balanced.csv", "data/chia/chia_without_scope_balanced.csv",
                  "f1df1a3d5b5af8d5ba2079462a9eeacdca7fd6f696a8e3fbcdcf830c3b90b465", 413465, ("train", "dev")),
            _file(_BIONLPLAB, "negex/negex.csv", "data/negex/negex.csv",
                  "953f632f30efda6c16a1f799ee91214ed092a3d489f8efb028831150bd87b82d", 333351, ("test",)),
        ),
        split_note="No official split. BioScope + Chia rows split by sentence (all concepts of a sentence "
                   "together): bucket = int(sha256('<source>:<sentence text>'), 16) % 100; buckets 0-89 -> "
                   "train, 90-99 -> dev. "
                   "Test = the bionlplab NegEx file (same sentences as the `negex` kit).",
        loader="assertion",
        sentence_count="documents",
    ),
)

# PhysioNet deid: the fields of its spec, its loader and its patient split live in medtune/datasets/deid.py
_SPECS = _SPECS + (DatasetSpec(**DEID_SPEC_FIELDS, source=_src(DEID_SOURCE),
                               files=tuple(_file(DEID_SOURCE, *f) for f in DEID_FILES)),)


def _view(base: str, **changes: Any) -> DatasetSpec:
    """Another reading of the files of corpus ``base`` (same folder, files, source and split)."""
    return dataclasses.replace(next(s for s in _SPECS if s.name == base), **changes)


def _linking_view(base: str, name: str, what: str) -> DatasetSpec:
    """The same documents as ``base``, evaluated as concept linking on their gold mentions."""
    return _view(base, name=name, task="linking",
                 description=f"{what} concept linking (normalisation to MeSH ids) on the gold mentions of "
                             f"{base}; '|' separates alternative ids, '+' the parts of a composite mention.")


_SPECS = _SPECS + (
    _view("bc5cdr", name="bc5cdr-cid", task="relation", labels=("Chemical", "Disease", "CID"),
          description="BioCreative V CDR chemical-induced disease relations: the bc5cdr abstracts with their "
                      "Chemical and Disease mentions (MeSH ids) and document-level CID relations between ids "
                      "(metadata['id_relations']). A chemical/disease id pair is positive when a CID line "
                      "names it; mentions are grouped by id."),
    _view("ade-classification", name="ade", task="relation", labels=("Drug", "AE", "ADE"),
          loader_args=(("relations", True),),
          description="ADE corpus v2 relations: sentences of PubMed case reports with Drug and AE (adverse "
                      "effect) spans and Drug -> AE 'ADE' relations. DRUG-AE.rel gives document-level "
                      "offsets; they are mapped into the sentence (the sentence's shift in its document is "
                      "the one most of its mentions agree on). Negative sentences (ADE-NEG.txt) are kept as "
                      "sentences without entities or relations. Same documents and split as "
                      "ade-classification."),
    _view("pubmedqa", name="pubmedqa-long-answer", splits=("train", "dev"), loader_args=(("context", "long_answer"),),
          description="PubMedQA (PQA-L) in the reasoning-free setting, for intermediate training: text = "
                      "LONG_ANSWER (the abstract's conclusion), text_pair = QUESTION, labels = [final_decision]. "
                      "Train and dev only: the test questions' conclusions give their answers away.",
          split_note="the train and dev PMIDs of pubmedqa (same split); no test split."),
    _linking_view("ncbi-disease", "ncbi-disease-linking", "Disease"),
    _linking_view("bc5cdr-disease", "bc5cdr-disease-linking", "Disease"),
    _linking_view("bc5cdr-chem", "bc5cdr-chem-linking", "Chemical"),
)

# COVID-QA: the fields of its spec, its loader and its split live in medtune/datasets/qa.py
_SPECS = _SPECS + (DatasetSpec(**COVID_QA_SPEC_FIELDS, source=_src(COVID_QA_SOURCE),
                               files=(_file(COVID_QA_SOURCE, *COVID_QA_FILE),)),)
_SPECS = _SPECS + (_view("covid-qa", pair=True, **COVID_QA_SENTENCES_FIELDS),)

# MedQuAD: the fields of its two specs, its loaders and its split live in medtune/datasets/medquad.py
_SPECS = _SPECS + tuple(DatasetSpec(**fields) for fields in MEDQUAD_SPEC_FIELDS)

# CodiEsp D/P in English and Spanish: the fields of its specs and its loader live in medtune/datasets/codiesp.py
_SPECS = _SPECS + tuple(DatasetSpec(**fields) for fields in CODIESP_SPEC_FIELDS)

_REGISTRY: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}


def _normalise_name(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def list_datasets() -> list[DatasetSpec]:
    """Every named corpus, in a stable order."""
    return list(_REGISTRY.values())


def dataset_names() -> list[str]:
    return list(_REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    """The spec of corpus ``name`` (case and ``_``/``-`` insensitive); unknown names list valid ones."""
    key = _normalise_name(str(name))
    spec = _REGISTRY.get(key)
    if spec is None:
        names = dataset_names()
        close = difflib.get_close_matches(key, names, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise DatasetNotFoundError(
            f"unknown dataset '{name}'.{hint} Valid names: {', '.join(names)}.",
            fix="use one of the valid names (medtune.datasets.list_datasets())",
        )
    return spec


def resolve_split(spec: DatasetSpec, split: str) -> str:
    """Canonical split name (``devel``/``validation`` -> ``dev``); unknown splits list valid ones."""
    key = SPLIT_ALIASES.get(str(split).strip().lower(), str(split).strip().lower())
    if key not in spec.splits:
        raise DatasetNotFoundError(
            f"dataset '{spec.name}' has no split '{split}'. Valid splits: {', '.join(spec.splits)}.",
            fix="use one of the valid splits",
        )
    return key
