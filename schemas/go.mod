module github.com/takumo/audit/schemas

go 1.26
