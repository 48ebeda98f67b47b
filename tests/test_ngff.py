"""One format object per NGFF version, and the outputs written from it."""

from __future__ import annotations

import json
import typing

import pytest
from pydantic import ValidationError

from pssr_volume.config import NgffVersion, OutputConfig
from pssr_volume.io.ome_zarr import chunk_codec, create_output, read_provenance, storage_of
from pssr_volume.ngff import FORMATS, V04, V05, ngff_format
from pssr_volume.pyramid import Level


def test_the_two_versions_differ_where_the_spec_does():
    assert (V04.zarr_format, V05.zarr_format) == (2, 3)
    assert (V04.codec, V05.codec) == ("gzip", "zstd")
    assert (V04.sharding, V05.sharding) == (False, True)
    assert (V04.checksum, V05.checksum) == (None, "crc32c")
    assert (V04.compression_levels, V05.compression_levels) == ((0, 9), (0, 22))
    assert (V04.attributes_key, V05.attributes_key) == (None, "ome")
    assert ngff_format("0.4") is V04 and ngff_format("0.5") is V05
    with pytest.raises(ValueError, match="0.4 or 0.5"):
        ngff_format("0.6")
    with pytest.raises(AttributeError):
        V05.sharding = False  # type: ignore[misc]  # frozen


def test_the_configuration_offers_exactly_the_versions_there_are_formats_for():
    assert set(typing.get_args(NgffVersion)) == set(FORMATS)
    assert OutputConfig(ngff_version="0.4").ngff is V04
    assert OutputConfig(compression_level=22).ngff is V05


@pytest.mark.parametrize(("settings", "words"), [
    ({"ngff_version": "0.4", "shard_shape": (8, 8, 8)}, "NGFF 0.4 is unsharded"),
    ({"ngff_version": "0.4", "compression_level": 12}, "gzip, whose levels are 0-9"),
])
def test_the_configuration_checks_the_limits_of_its_format(settings, words):
    with pytest.raises(ValidationError, match=words):
        OutputConfig(**settings)


@pytest.mark.parametrize("fmt", [V04, V05], ids=lambda f: f.version)
def test_an_output_is_stored_as_its_format_says(tmp_path, fmt):
    out = tmp_path / "o.ome.zarr"
    level = Level("0", (2, 8, 8), (50.0, 4.0, 4.0), (1, 1, 1))
    create_output(out, (level,), (1, 8, 8), "uint8", fmt.version, provenance={"a": 1})
    attrs_file = json.loads((out / fmt.attributes_file).read_text())
    attrs = attrs_file.get("attributes", attrs_file)  # zarr v3 keeps them in zarr.json
    ngff = attrs[fmt.attributes_key] if fmt.attributes_key else attrs
    assert "multiscales" in ngff
    array_meta = out / "0" / ("zarr.json" if fmt.zarr_format == 3 else ".zarray")
    assert json.loads(array_meta.read_text())["zarr_format"] == fmt.zarr_format
    assert chunk_codec(fmt.version) == fmt.codec and fmt.codec in array_meta.read_text()
    assert storage_of(read_provenance(out))["checksum"] == fmt.checksum
