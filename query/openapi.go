package query

import _ "embed"

// openAPI is the OpenAPI 3 description of the API, served at
// /v1/openapi.json and kept in step with the routes by a test.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3 document of the API. The caller must not
// modify it.
func OpenAPI() []byte { return openAPI }
