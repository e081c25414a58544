"""bert-tf2: a faithful TensorFlow 2 rewrite of Google's original BERT."""
from setuptools import find_packages, setup

setup(
    name="bert-tf2",
    version="0.1.0",
    description=("Google's original BERT on TensorFlow 2: same numerics, same TF1 "
                 "checkpoint names, same flags."),
    packages=find_packages(include=["modeling", "modeling.*"]),
    py_modules=["create_pretraining_data", "run_pretraining", "run_classifier", "run_squad",
                "run_ner", "run_distillation", "extract_features", "shared_flags",
                "pretraining_flags", "pretraining_data_flags", "tokenizer_flags", "tpu_flags",
                "model_flags", "io_flags", "bucket_flags", "fine_tuning_flags", "predict_flags",
                "export_flags", "classifier_task_flags", "example_file_flags", "finite_flags",
                "labels_flags", "multi_label_flags"],
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorflow-text>=2.21,<2.22",
        "absl-py>=2.1",
        "numpy>=1.26,<3",
        "google-crc32c>=1.5",
        "safetensors>=0.5",
        "sentencepiece>=0.2",
        "h5py>=3.11",  # keras-hub presets' weights (tensorflow requires it too)
    ],
    extras_require={
        # seqeval (the NER metric's oracle) is source-only; it builds with today's
        # setuptools_scm (checked in a fresh venv) and needs scikit-learn, also the
        # oracle of the multi-label metrics.
        # tensorflow-hub (the TF Hub tests' oracle) imports pkg_resources, which
        # setuptools 81 drops.
        # pytest-xdist: make test runs the files on two workers (the suite is mostly
        # single-threaded TensorFlow start-up and tiny steps).
        "test": ["pytest>=8", "pytest-xdist==3.8.0", "bert-tensorflow==1.0.4", "albert-tensorflow==1.1",
                 "tf-keras>=2.21,<2.22", "seqeval==1.2.2", "scikit-learn>=1.3",
                 "tensorflow-hub==0.16.1", "setuptools<81",
                 # keras-hub's BertBackbone, the oracle of the keras-hub presets.
                 "keras-hub==0.32.0",
                 # The deployment exports' runtimes and converter (docs/deploy.md).
                 "ai-edge-litert==2.3.0", "onnxruntime==1.32.0", "tf2onnx==1.17.0"],
        # The Hugging Face bridge's tests against transformers (optional: they skip
        # without it). make test installs it with the CPU wheel, torch==2.13.0+cpu.
        "hf": ["torch>=2.4", "transformers==5.17.0"],
    },
)
