module tls-mailer/bench/go

go 1.19
