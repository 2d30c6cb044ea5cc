"""Night Talk supervision (督办): follow every case from its events and keep its clock."""
