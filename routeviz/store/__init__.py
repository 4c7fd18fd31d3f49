"""The store layer: where recorded routing lives and how it is read back.

`schema` (the tables and their Arrow types), `core` (the Parquet store read through DuckDB
views), `query` (the SQL every analysis asks through), `swap` (generations: an overwrite
stages the new run beside the old and swaps at the end), `writer` and `runwriter` (the
background thread that turns captured batches into part files), `spark` (the same files
read by PySpark). Nothing here imports torch.
"""

from routeviz.store.core import (
                                 FORMAT_VERSION,
                                 MARKER,
                                 Store,
                                 init_store,
                                 open_store,
                                 replace_file,
                                 store_version,
                                 write_part,
)
from routeviz.store.swap import delete_run_files, recover, run_exists

__all__ = ["FORMAT_VERSION", "MARKER", "Store", "delete_run_files", "init_store", "open_store",
           "recover", "replace_file", "run_exists", "store_version", "write_part"]
