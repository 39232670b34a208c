package main

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/klog/v2"
)

// The namespaces kube-apiserver's bootstrap controller creates.
var systemNamespaces = []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease}

type coreStores struct {
	namespaces *genericregistry.Store
}

// installCoreAPI serves /api/v1 namespaces, secrets and configmaps from etcd, under kube-apiserver's
// keys (/registry/<resource>/…), through the storage (and so the encryption) the options configured.
func installCoreAPI(server *genericapiserver.GenericAPIServer, optsGetter generic.RESTOptionsGetter) (*coreStores, error) {
	namespaces, err := newStore(optsGetter, "namespaces", "namespace", namespaceStrategy,
		func() runtime.Object { return &corev1.Namespace{} }, func() runtime.Object { return &corev1.NamespaceList{} })
	if err != nil {
		return nil, err
	}
	secrets, err := newStore(optsGetter, "secrets", "secret", secretStrategy,
		func() runtime.Object { return &corev1.Secret{} }, func() runtime.Object { return &corev1.SecretList{} })
	if err != nil {
		return nil, err
	}
	configMaps, err := newStore(optsGetter, "configmaps", "configmap", configMapStrategy,
		func() runtime.Object { return &corev1.ConfigMap{} }, func() runtime.Object { return &corev1.ConfigMapList{} })
	if err != nil {
		return nil, err
	}
	group := genericapiserver.NewDefaultAPIGroupInfo("", scheme, runtime.NewParameterCodec(scheme), codecs)
	group.VersionedResourcesStorageMap[coreV1.Version] = map[string]rest.Storage{
		"namespaces": namespaces,
		"secrets":    secrets,
		"configmaps": configMaps,
	}
	if err := server.InstallLegacyAPIGroup(genericapiserver.DefaultLegacyAPIPrefix, &group); err != nil {
		return nil, err
	}
	return &coreStores{namespaces: namespaces}, nil
}

func newStore(optsGetter generic.RESTOptionsGetter, plural, singular string, strategy *objectStrategy,
	newFunc, newListFunc func() runtime.Object,
) (*genericregistry.Store, error) {
	resource := schema.GroupResource{Resource: plural}
	store := &genericregistry.Store{
		NewFunc:                   newFunc,
		NewListFunc:               newListFunc,
		DefaultQualifiedResource:  resource,
		SingularQualifiedResource: schema.GroupResource{Resource: singular},
		CreateStrategy:            strategy,
		UpdateStrategy:            strategy,
		DeleteStrategy:            strategy,
		TableConvertor:            rest.NewDefaultTableConvertor(resource),
	}
	attrs := storage.DefaultClusterScopedAttr
	if strategy.namespaced {
		attrs = storage.DefaultNamespaceScopedAttr
	}
	if err := store.CompleteWithOptions(&generic.StoreOptions{RESTOptions: optsGetter, AttrFunc: attrs}); err != nil {
		return nil, fmt.Errorf("%s storage: %w", plural, err)
	}
	return store, nil
}

// bootstrapNamespaces creates default, kube-system, kube-public and kube-node-lease once the
// server runs, retrying while etcd is unavailable; until then /readyz reports
// poststarthook/bootstrap-namespaces not ok.
func (s *coreStores) bootstrapNamespaces(hook genericapiserver.PostStartHookContext) error {
	ctx := genericapirequest.WithNamespace(hook.Context, metav1.NamespaceNone)
	return wait.PollUntilContextTimeout(ctx, time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, name := range systemNamespaces {
			namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
			_, err := s.namespaces.Create(ctx, namespace, rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				klog.Errorf("creating namespace %s (will retry): %v", name, err)
				return false, nil
			}
		}
		return true, nil
	})
}
