package treestore

// LeavesAfterQuery is the query of LeavesAfter on the runs table runs.
func LeavesAfterQuery(runs string) string { return leavesAfterQuery(runs) }
