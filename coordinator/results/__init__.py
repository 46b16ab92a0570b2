"""Results at the coordinator: run folders, runs.csv, disk room."""
