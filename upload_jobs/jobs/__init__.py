"""The job table and what is done with it: tables (`models`), engines and migrations (`database`),
claims and outcomes (`store`), pages (`pages`), sources and work dirs (`files`), sweeps
(`sweeping`), reconcile (`reconcile`), attempt reports and outcomes, progress."""
