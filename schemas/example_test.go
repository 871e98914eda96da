package schemas_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/takumo/audit/schemas"
)

// A host application adds its own actions at start-up; events using them
// are then validated like built-in ones.
func ExampleCatalog_Register() {
	catalog := schemas.NewCatalog()

	// New actions in an existing category.
	err := catalog.Register(schemas.ActionSpec{
		Name:        "project.archived",
		Category:    schemas.CategoryOrganization,
		Description: "A project was archived",
		Details: []schemas.Field{
			{Name: "project_name", Type: schemas.TypeString, Required: true, Description: "Name of the project"},
		},
	})
	if err != nil {
		fmt.Println(err)
	}

	// A new category must be registered explicitly first.
	err = catalog.Register(schemas.ActionSpec{Name: "deploy.started", Category: "deploy"})
	fmt.Println(errors.Is(err, schemas.ErrUnknownCategory))
	if err := catalog.RegisterCategory("deploy"); err != nil {
		fmt.Println(err)
	}
	if err := catalog.Register(schemas.ActionSpec{Name: "deploy.started", Category: "deploy"}); err != nil {
		fmt.Println(err)
	}

	e := schemas.Event{
		ID:         schemas.NewID(),
		OrgID:      "acme",
		Action:     "project.archived",
		Category:   schemas.CategoryOrganization,
		OccurredAt: time.Now(),
		Actor:      schemas.Actor{Type: schemas.ActorUser, ID: "usr_1"},
		Targets:    []schemas.Target{{Type: "project", ID: "prj_9"}},
		Outcome:    schemas.OutcomeSuccess,
		Details:    map[string]any{},
	}
	fmt.Println(catalog.Validate(&e))

	e.Details["project_name"] = "Apollo"
	fmt.Println(catalog.Validate(&e))
	// Output:
	// true
	// schemas: invalid event: details.project_name: required (string)
	// <nil>
}
