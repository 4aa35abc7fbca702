// openvex-check reads an OpenVEX document with the reference implementation
// (github.com/openvex/go-vex) and prints what it understood, as JSON: the
// context it detected, each statement's validation error (if any), and
// whether the document matches each statement's own product and
// subcomponents. patchd's tests compare that with what patchd meant to say.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/openvex/go-vex/pkg/vex"
)

type product struct {
	ID            string   `json:"id"`
	Subcomponents []string `json:"subcomponents"`
	Matches       bool     `json:"matches"`
}

type statement struct {
	Vulnerability string    `json:"vulnerability"`
	Aliases       []string  `json:"aliases"`
	Status        string    `json:"status"`
	Invalid       string    `json:"invalid,omitempty"`
	Products      []product `json:"products"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: openvex-check FILE")
		os.Exit(2)
	}
	doc, err := vex.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out := struct {
		Context    string      `json:"context"`
		Latest     bool        `json:"latest"`
		ID         string      `json:"id"`
		Author     string      `json:"author"`
		Version    int         `json:"version"`
		Timestamp  string      `json:"timestamp"`
		Statements []statement `json:"statements"`
	}{Context: doc.Context, Latest: doc.Context == vex.ContextLocator(), ID: doc.ID, Author: doc.Author, Version: doc.Version}
	if doc.Timestamp != nil {
		out.Timestamp = doc.Timestamp.UTC().Format("2006-01-02T15:04:05Z07:00")
	}
	for i := range doc.Statements {
		s := &doc.Statements[i]
		st := statement{Vulnerability: string(s.Vulnerability.Name), Status: string(s.Status), Products: []product{}, Aliases: []string{}}
		for _, a := range s.Vulnerability.Aliases {
			st.Aliases = append(st.Aliases, string(a))
		}
		if err := s.Validate(); err != nil {
			st.Invalid = err.Error()
		}
		for _, p := range s.Products {
			subs := []string{}
			for _, c := range p.Subcomponents {
				subs = append(subs, c.ID)
			}
			st.Products = append(st.Products, product{ID: p.ID, Subcomponents: subs, Matches: len(doc.Matches(string(s.Vulnerability.Name), p.ID, subs)) > 0})
		}
		out.Statements = append(out.Statements, st)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
