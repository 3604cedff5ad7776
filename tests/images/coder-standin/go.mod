module github.com/coderops/deploy/tests/images/coder-standin

go 1.26

replace github.com/lib/pq => github.com/coder/pq v1.10.5-0.20250807075151-6ad9b0a25151

require (
	github.com/golang-migrate/migrate/v4 v4.19.1
	github.com/lib/pq v1.10.9
)
