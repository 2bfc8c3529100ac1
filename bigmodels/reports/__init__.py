"""Reports over finished runs and their measurements: the architecture comparison
(``comparison``), a sweep's runs or file as a table (``sweep_table``; the shipped sweep in
``shipped/``) and the scaling-law lab's fits, frontier, allocation and check
(``scaling_lab``). Above ``runs/`` (they read the store) and below the pages."""
