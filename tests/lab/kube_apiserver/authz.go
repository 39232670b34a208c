package main

import (
	"context"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// labAuthorizer stands in for kube-apiserver's Node,RBAC: any authenticated user may do anything;
// anonymous users may read what RBAC's system:public-info-viewer grants.
type labAuthorizer struct{}

var publicPaths = map[string]bool{"/healthz": true, "/livez": true, "/readyz": true, "/version": true, "/version/": true}

func (labAuthorizer) Authorize(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	for _, group := range a.GetUser().GetGroups() {
		if group == user.AllAuthenticated {
			return authorizer.DecisionAllow, "", nil
		}
	}
	if !a.IsResourceRequest() && a.GetVerb() == "get" && publicPaths[a.GetPath()] {
		return authorizer.DecisionAllow, "", nil
	}
	return authorizer.DecisionNoOpinion, "the lab apiserver serves authenticated users only", nil
}
