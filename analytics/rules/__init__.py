"""Alert rules as plugins: one module per rule type (`KEY`, config, class), listed in `registry`."""
