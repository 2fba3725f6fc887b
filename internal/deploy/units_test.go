package deploy

import (
	"slices"
	"testing"
)

func TestUnitDependencies(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []UnitDependency
	}{
		{"several per key, several keys", "[Unit]\nWants=a.service b.service\nRequires=c.socket\nAfter=d.service\n",
			[]UnitDependency{{"Wants", "a.service"}, {"Wants", "b.service"}, {"Requires", "c.socket"}}},
		{"all kinds", "[Unit]\nRequisite=a\nBindsTo=b\nUpholds=c\n",
			[]UnitDependency{{"Requisite", "a"}, {"BindsTo", "b"}, {"Upholds", "c"}}},
		{"other sections do not count", "[Install]\nWantedBy=multi-user.target\n[Service]\nWants=x.service\n", nil},
		{"comments and continued lines", "[Unit]\n# Wants=no.service\n; Requires=no.service\nWants=a.service \\\n  b.service\n",
			[]UnitDependency{{"Wants", "a.service"}, {"Wants", "b.service"}}},
		{"drop-in", "[Unit]\nWants=clamd@scan.service\n", []UnitDependency{{"Wants", "clamd@scan.service"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := UnitDependencies([]byte(tc.file))
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("UnitDependencies = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if got, _ := UnitDependencies([]byte("Wants=a.service\n")); got != nil {
		t.Errorf("no section: %v; want nothing", got)
	}
}
