"""Datasets: readers, in-memory sources, the data check, tf.data pipelines and the synthetic shapes dataset.

Each room has one door:

* `readers` (package): `read_*_sources(data_config, seed, problems)` and `*_source_from_spec` pick the
  reader `data.format` names; one module per format (`coco`, `voc`, `yolo`, `pennfudan`, `masks`,
  `folders_csv`, `tfds`), all built on `readers.base.collect`.
* `records` / `mask_records`: the sources the readers return, and the `Source` protocol.
* `files`: image files on disk (listing, header sizes) and the seeded train/val splits.
* `check`: the data check (`check_data`, `apply_on_bad`).
* `pipeline` (classification), `detection_pipeline`, `segmentation_pipeline`: tf.data; `transforms`: the
  geometry training and serving share.
* `synthetic` (package): the embedded shapes dataset.
"""
