module gcsafety.dev/gcsafety

go 1.19
