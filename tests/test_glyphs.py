"""sample_models.glyphs: the synthetic glyph images and their ground-truth tags."""

import numpy as np

from sample_models import glyphs


def test_region_tags_mark_the_patches_the_letter_covers():
    rng = np.random.default_rng(0)
    glyph = glyphs.draw_glyph("H", "bottom-right", "white", "black", rng)
    regions = np.array(glyphs.patch_regions(glyph.mask)).reshape(6, 6)
    assert (regions[:3, :] == "background").all() and (regions[:, :3] == "background").all()
    assert (regions[3:, 3:] == "glyph").sum() >= 3
    assert glyph.image.shape == (48, 48, 3) and glyph.image[glyph.mask].mean() > 150


def test_dataset_is_deterministic_and_tagged():
    a, b = glyphs.glyph_dataset(8), glyphs.glyph_dataset(8)
    assert [np.asarray(i.image).tobytes() for i in a] == [np.asarray(i.image).tobytes() for i in b]
    for item in a:
        assert item.label == item.tags["letter"] and item.tags["fg"] != item.tags["bg"]
        assert item.tags["location"] in glyphs.LOCATIONS and len(item.tags["region"]) == 36
