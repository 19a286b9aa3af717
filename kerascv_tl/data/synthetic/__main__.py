"""`python -m kerascv_tl.data.synthetic TASK ROOT` (see `kerascv_tl.data.synthetic.command`)."""

from kerascv_tl.data.synthetic.command import WRITERS, main
from kerascv_tl.data.synthetic.multi_label import write_multi_label_dataset

WRITERS["multi_label"] = write_multi_label_dataset  # python -m kerascv_tl.data.synthetic multi_label ROOT
main()
